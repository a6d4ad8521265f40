"""The signed-in user of this browser session (core.users decides; this reads Streamlit's request context)."""
from __future__ import annotations

import streamlit as st

from core.users import LOCAL, NotSignedIn, User, auth_settings, resolve
from ui.text import plain

_USER = "_signed_in_user"


def _peer_and_headers() -> tuple[str | None, list[tuple[str, str]]]:
    """The websocket's own TCP peer (st.context.ip_address hides loopback peers as None, and a trusted proxy is
    usually on loopback) and the handshake's headers."""
    from streamlit.runtime.context import _get_client_context

    client = _get_client_context()
    if client is None:
        return None, []
    return client.remote_ip, [(str(k), str(v)) for k, v in client.headers]


def _resolve() -> User:
    settings = auth_settings()
    if settings.mode == "none":
        return LOCAL
    if settings.mode == "oidc":
        return resolve(settings, oidc=st.user.to_dict())
    peer, headers = _peer_and_headers()
    return resolve(settings, headers, peer)


def _login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def sign_in_gate() -> User:
    """Called by page_setup(): who this is, shown in the sidebar; a session nobody vouches for sees why and
    nothing else."""
    try:
        user = _resolve()
    except NotSignedIn as exc:
        st.session_state.pop(_USER, None)
        st.error(plain(exc))
        if auth_settings().mode == "oidc":
            if _login_configured():
                st.button("Sign in", type="primary", on_click=st.login, key="sign_in")
            else:
                st.info("Signing in is not set up on this server yet: it needs an [auth] section in Streamlit's "
                        "secrets (README, Hosting for a class). Tell whoever runs it.")
        st.stop()
    st.session_state[_USER] = user
    if auth_settings().mode != "none":
        st.sidebar.text(f"Signed in as {user.label}")  # not Markdown: an e-mail address stays exactly as it is
        if auth_settings().mode == "oidc":
            st.sidebar.button("Sign out", on_click=st.logout, key="sign_out")
    return user


def current_user() -> User:
    """The user page_setup() let in for this run."""
    user = st.session_state.get(_USER)
    return user if isinstance(user, User) else _resolve()
