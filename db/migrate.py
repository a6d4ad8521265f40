"""Apply Alembic migrations programmatically (at app start-up and in tests)."""
from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from db.session import get_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_DONE: set[str] = set()
_LOCK = threading.Lock()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["url"] = url  # not via set_main_option: '%' in passwords breaks configparser
    return cfg


def head_revision() -> str | None:  # None only for a migrations folder without revisions
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def current_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest revision; a no-op after the first call per process."""
    with _LOCK:
        if url in _DONE:
            return
        if current_revision(url) != head_revision():
            command.upgrade(alembic_config(url), "head")
        _DONE.add(url)
