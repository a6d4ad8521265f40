"""arena: rounds (images + model pool opened by a teacher), their pictures, and blind pairwise votes

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'arena_rounds',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('owner', sa.String(length=120), nullable=True),
        sa.Column('task', sa.String(length=40), nullable=False),
        sa.Column('operation', sa.String(length=40), nullable=False),
        sa.Column('params', sa.JSON(), nullable=False),
        sa.Column('models', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_rounds')),
        sqlite_autoincrement=True,  # a deleted round's id is never reused
    )
    op.create_index('ix_arena_rounds_status_created', 'arena_rounds', ['status', 'created_at'])
    op.create_table(
        'arena_pictures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('round_id', sa.Integer(), nullable=False),
        sa.Column('image_index', sa.Integer(), nullable=False),
        sa.Column('image_name', sa.String(length=120), nullable=False),
        sa.Column('image_sha', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('png', sa.LargeBinary(), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['round_id'], ['arena_rounds.id'], name=op.f('fk_arena_pictures_round_id_arena_rounds'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_arena_pictures_run_id_runs'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_pictures')),
        sa.UniqueConstraint('round_id', 'image_index', 'role', 'model', name='uq_arena_pictures_round_image'),
    )
    op.create_index(op.f('ix_arena_pictures_round_id'), 'arena_pictures', ['round_id'])
    op.create_table(
        'arena_votes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('round_id', sa.Integer(), nullable=False),
        sa.Column('image_index', sa.Integer(), nullable=False),
        sa.Column('image_sha', sa.String(length=64), nullable=False),
        sa.Column('model_a', sa.String(length=200), nullable=False),
        sa.Column('model_b', sa.String(length=200), nullable=False),
        sa.Column('winner', sa.String(length=10), nullable=False),
        sa.Column('left', sa.String(length=200), nullable=False),
        sa.Column('voter', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['round_id'], ['arena_rounds.id'], name=op.f('fk_arena_votes_round_id_arena_rounds'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_arena_votes')),
        sa.UniqueConstraint('round_id', 'voter', 'image_index', 'model_a', 'model_b', name='uq_arena_votes_once'),
    )
    op.create_index('ix_arena_votes_round_id', 'arena_votes', ['round_id', 'id'])


def downgrade() -> None:
    op.drop_table('arena_votes')
    op.drop_table('arena_pictures')
    op.drop_table('arena_rounds')
