"""The results store this process uses: its URL, migrated to the newest schema once per process."""
from __future__ import annotations

from sqlalchemy.engine import make_url

from core.config import get_settings
from core.errors import LabError
from db import migrate, session


def _tuning() -> session.Tuning:
    s = get_settings()
    return session.Tuning(s.store_busy_timeout_ms, s.store_retry_delay_s)


session.use_tuning(_tuning)  # every store call of this process waits on locks as the settings say


class StoreUnavailable(LabError):
    pass


def store_url() -> str:
    return get_settings().database_url


def ensure_store() -> str:
    """Apply migrations once per process; returns the URL in use."""
    url = store_url()
    try:
        migrate.upgrade(url)
    except Exception as exc:
        raise StoreUnavailable(f"The results store at {_redact(url)} could not be opened or migrated: {exc}") from None
    return url


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
