"""jobs: the worker's identity (token and process start time) beside its PID

Recovery and cancel signal a PID only when the process holding it is still the job's worker.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_token', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('worker_started', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('worker_started')
        batch_op.drop_column('worker_token')
