"""jobs: title, device slot, result

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title', sa.String(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('device', sa.String(length=40), nullable=False, server_default='cpu'))
        batch_op.add_column(sa.Column('result', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.create_index('ix_jobs_device_status', ['device', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_device_status')
        batch_op.drop_column('result')
        batch_op.drop_column('device')
        batch_op.drop_column('title')
