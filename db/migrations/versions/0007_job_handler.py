"""jobs: the module that registered the job's handler

The job runner knows handlers only by registration: the worker process imports the module recorded here, which
registers the handler for the job's kind, instead of the runner importing every kind of work itself.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


# The modules that registered the kinds of work this version has (jobs queued before the upgrade still run).
HANDLERS = {'benchmark': 'core.benchmark.run', 'train': 'core.training.run', 'sleep': 'core.jobs.handlers'}


def upgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('handler', sa.String(length=200), nullable=True))
    jobs = sa.table('jobs', sa.column('kind', sa.String), sa.column('handler', sa.String))
    for kind, module in HANDLERS.items():
        op.execute(jobs.update().where(jobs.c.kind == kind, jobs.c.handler.is_(None)).values(handler=module))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('handler')
