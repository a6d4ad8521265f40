"""runs and jobs: who made them; jobs indexed for the fair share of device slots

Only the owner or an admin may cancel or delete them; quotas and the fair share of the device slot count
jobs per owner. Rows from before have no owner: only an admin may change them.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=120), nullable=True))
        batch_op.create_index('ix_runs_owner', ['owner'], unique=False)
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner', sa.String(length=120), nullable=True))
        batch_op.create_index('ix_jobs_owner_status', ['owner', 'status'], unique=False)
        batch_op.create_index('ix_jobs_device_finished', ['device', 'finished_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_device_finished')
        batch_op.drop_index('ix_jobs_owner_status')
        batch_op.drop_column('owner')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('ix_runs_owner')
        batch_op.drop_column('owner')
