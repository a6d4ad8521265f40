import os

from alembic import context

from db.models import Base
from db.session import get_engine

config = context.config
# db/migrate.py passes the URL; the alembic CLI falls back to DATABASE_URL or the default file.
url = config.attributes.get("url") or os.environ.get("DATABASE_URL", "sqlite:///data/results.db")

with get_engine(url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
