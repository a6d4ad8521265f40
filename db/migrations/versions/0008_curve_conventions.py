"""job_metrics: the convention of each curve point (what was measured, on how many samples)

A training curve is only comparable with another measured the same way: a GAN's per-epoch FD on 64 samples is
biased and not the FID of a benchmark. Points stored before this revision have none (NULL).

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('convention', sa.String(length=600), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_metrics', schema=None) as batch_op:
        batch_op.drop_column('convention')
