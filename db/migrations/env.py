from alembic import context

from db.models import Base
from db.session import get_engine

config = context.config
# db/migrate.py passes the URL; with the alembic CLI give it as `alembic -x url=... upgrade head` (default: the
# embedded store's file). db reads no environment of its own (core.config does, for the app).
url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url", "sqlite:///data/results.db")

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
