"""Results store: SQLAlchemy 2.0 ORM, sessions from DATABASE_URL, Alembic migrations. Never imports torch."""
