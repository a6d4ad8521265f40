"""Shared Streamlit resources and the one way pages report errors."""
from __future__ import annotations

import logging
import uuid
from typing import Callable, TypeVar

import streamlit as st

from core import services
from core.engine import Engine
from core.errors import LabError

T = TypeVar("T")
log = logging.getLogger("imglab.ui")


@st.cache_resource(show_spinner=False)
def startup() -> str:
    """Migrate the results store once per server process; fail jobs a previous run left behind, start queued ones."""
    url = services.ensure_store()
    services.recover_jobs()
    return url


@st.cache_resource(show_spinner=False, max_entries=4)
def get_engine(device: str = "auto") -> Engine:
    """One engine per device for all sessions; its bounded cache holds the loaded models."""
    return Engine(device=device)


def guarded(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Call into core; show LabErrors as they are, anything else as a short message with a log id."""
    try:
        return fn(*args, **kwargs)
    except LabError as exc:
        st.error(str(exc))
    except Exception:
        ref = uuid.uuid4().hex[:8]
        log.exception("unexpected error (ref %s)", ref)
        st.error(f"Something went wrong on the server (reference {ref}); the details are in the server log.")
    return None


def device_picker() -> Engine | None:
    choice = st.sidebar.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="device",
                                  help="auto picks CUDA, then Apple MPS, then the CPU.")
    engine = guarded(get_engine, choice)
    if engine is not None:
        st.sidebar.caption(f"Running on **{engine.device}**")
    return engine
