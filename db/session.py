"""Engines and sessions for a store URL; SQLite gets WAL, busy_timeout and foreign keys on connect.

The retry budget (how long one store call may wait on a lock before giving up) is defined here, so the job
runner can keep its heartbeat window above it: a worker whose beat waited out a lock is not taken for dead.
db reads no environment: its lock-wait settings come from `use_tuning` (core.store installs core.config's).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

RETRY_ATTEMPTS = 5
T = TypeVar("T")
_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()
_BUSY_WORDS = ("database is locked", "database table is locked", "busy", "lock timeout", "lock not available",
               "statement timeout", "canceling statement")


@dataclass(frozen=True)
class Tuning:
    """How long a store call waits on a lock: per SQLite statement, and the first pause between retries of a
    locked transaction (it doubles each time)."""

    busy_timeout_ms: int = 10_000
    retry_delay_s: float = 0.2


_tuning: Callable[[], Tuning] = Tuning


def use_tuning(source: Callable[[], Tuning]) -> None:
    """Where the lock-wait settings come from, asked on each use (so a changed setting applies at once)."""
    global _tuning
    _tuning = source


def busy_timeout_ms() -> int:
    return _tuning().busy_timeout_ms


def retry_delay_s() -> float:
    return _tuning().retry_delay_s


def retry_budget_s(attempts: int = RETRY_ATTEMPTS, base_delay: float | None = None) -> float:
    """Longest a retried store call waits on a lock: every attempt's busy timeout plus the pauses between them
    (with_retry sleeps base_delay * 2**i after attempt i, the last attempt excepted)."""
    delay = retry_delay_s() if base_delay is None else base_delay
    return attempts * busy_timeout_ms() / 1000 + delay * (2 ** (attempts - 1) - 1)


class StoreBusy(Exception):
    """The database stayed locked through every retry."""


def with_retry(fn: Callable[[], T], attempts: int = RETRY_ATTEMPTS, base_delay: float | None = None) -> T:
    """Retry a transaction that failed because SQLite stayed locked past busy_timeout, within the retry budget
    db.session.retry_budget_s() states (the job heartbeat window is built on it)."""
    base_delay = retry_delay_s() if base_delay is None else base_delay
    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            if attempt == attempts - 1:
                raise StoreBusy("The results store is busy (locked by another writer); try again shortly.") from exc
            time.sleep(base_delay * 2**attempt)
    raise AssertionError("unreachable")


def is_busy(exc: BaseException | None) -> bool:
    """A store that is locked or out of connections (worth trying again later), told apart from a broken one.
    Follows the exception's cause and context, so a busy error re-raised as another type still counts."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (PoolTimeout, StoreBusy)):
            return True
        if isinstance(exc, OperationalError) and any(w in str(exc.orig).lower() for w in _BUSY_WORDS):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={busy_timeout_ms()}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms() / 1000, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(url: str) -> Engine:
    with _LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = make_engine(url)
        return _ENGINES[url]


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on error."""
    session = sessionmaker(get_engine(url), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
