"""Indexes for the Compare and Leaderboard queries

- runs (task, kind, dataset_id, model_id): the newest benchmark run per model on a dataset is an index range
  grouped by model, without reading the runs table;
- image_metrics (run_id, name, value) replaces (run_id, name): box plots and worst/best images read the values
  from the index, already sorted.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_task_kind_dataset_model', ['task', 'kind', 'dataset_id', 'model_id'], unique=False)
    with op.batch_alter_table('image_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_image_metrics_run_name')
        batch_op.create_index('ix_image_metrics_run_name_value', ['run_id', 'name', 'value'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_image_metrics_run_name_value')
        batch_op.create_index('ix_image_metrics_run_name', ['run_id', 'name'], unique=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_task_kind_dataset_model')
