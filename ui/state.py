"""Shared Streamlit resources and the one way pages report errors."""
from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import TypeVar
from collections.abc import Callable

import streamlit as st

from core import services
from core.config import get_settings
from core.engine import Engine
from core.errors import LabError
from ui.identity import sign_in_gate
from ui.text import plain

T = TypeVar("T")
log = logging.getLogger("imglab.ui")
_RUNS, _NOTICES, _ROUTED = "_page_runs", "_page_notices", "_routed_by_app"
APP_ICON = Path(__file__).with_name("icon.png")


def _server_logging() -> None:
    """The app's own log lines (model builds, unexpected errors with their reference) on the server's stderr,
    at IMGLAB_LOG_LEVEL (default WARNING)."""
    app_log = logging.getLogger("imglab")
    app_log.setLevel(get_settings().log_level)
    if not app_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        app_log.addHandler(handler)
        app_log.propagate = False


@st.cache_resource(show_spinner=False)
def startup() -> str:
    """Migrate the results store once per server process; fail jobs a previous run left behind, start queued ones."""
    _server_logging()
    url = services.ensure_store()
    services.recover_jobs()
    return url


@st.cache_resource(show_spinner=False, max_entries=4)
def get_engine(device: str = "auto") -> Engine:
    """One engine per device for all sessions; its bounded cache holds the loaded models."""
    return Engine(device=device)


def guarded(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Call into core; a busy store (locked, out of connections) as such, LabErrors as they are, anything else
    as a short message with a log id."""
    from core.services.jobs import STORE_BUSY, store_busy

    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if store_busy(exc):
            log.warning("results store busy: %s", exc)
            st.error(STORE_BUSY)
        elif isinstance(exc, LabError):
            st.error(plain(exc))
        else:
            ref = uuid.uuid4().hex[:8]
            log.exception("unexpected error (ref %s)", ref)
            st.error(f"Something went wrong on the server (reference {ref}); the details are in the server log.")
    return None


def device_picker() -> Engine | None:
    choice = st.sidebar.selectbox("Device", services.DEVICE_CHOICES, key="device",
                                  help="auto picks CUDA, then Apple MPS, then the CPU.")
    engine = guarded(get_engine, choice)
    if engine is not None:
        st.sidebar.caption(f"Running on **{plain(engine.device)}**")
    return engine


def app_routes() -> None:
    """Called by app.py on every run it routes, before st.navigation: the page then knows it was reached
    through the app (its navigation, layout and sidebar), not run on its own."""
    st.session_state[_ROUTED] = True


def page_setup() -> None:
    """Call first in every page. When a fresh server's first request is a page URL (a shared link, a tab
    reconnecting after a restart), Streamlit runs that page without app.py, in its legacy pages/-folder mode:
    raw file names as navigation, no wide layout. That mode ends once app.py's st.navigation has run once, so
    end it here and rerun: the rerun goes through app.py and lands on the same page (same URL path). A session
    whose first run started in that mode just before another session ended it is caught by the missing mark of
    app_routes(). Only a session's first run is rerun (later runs carry clicks that a rerun would lose)."""
    from streamlit.runtime.pages_manager import PagesManager

    routed = st.session_state.pop(_ROUTED, False)
    if PagesManager.uses_pages_directory or not routed:
        PagesManager.uses_pages_directory = False
        if _RUNS not in st.session_state:
            st.rerun()
    st.session_state[_RUNS] = st.session_state.get(_RUNS, 0) + 1
    sign_in_gate()
    st.session_state[_NOTICES] = st.container()  # full width, above the page: notices from inside columns go here


def opened_from_link() -> bool:
    """True during the first run of a browser session: the query params are the link that was opened, not
    values the app wrote itself while the user clicked around."""
    return st.session_state.get(_RUNS, 1) <= 1


def notice(text: str) -> None:
    """A warning at the top of the page, at full width, wherever the code that raises it draws."""
    area = st.session_state.get(_NOTICES)
    (area if area is not None else st).warning(text, icon=":material/link_off:")
