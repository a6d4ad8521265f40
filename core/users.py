"""Who is asking, and what they may change.

Embedded default (IMGLAB_AUTH=none): one local user, an admin, no login. Shared modes: the name comes from
Streamlit's own login (IMGLAB_AUTH=oidc, st.user) or from a header set by an authenticating reverse proxy
(IMGLAB_AUTH=proxy), believed only when the connection comes from an address in IMGLAB_TRUSTED_PROXIES.
Everyone may view and compare everything; only the owner or an admin (IMGLAB_ADMINS) may change or delete a
thing, and things without an owner (the registry's shared models, rows from before owners were recorded) only
an admin. Pure functions: the UI layer hands in the headers and the peer address.
"""
from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from collections.abc import Iterable, Mapping

from core.config import AUTH_MODES, get_settings
from core.errors import LabError

MODES = AUTH_MODES
LOCAL_NAME = "local"
NOT_SIGNED_IN = ("You are not signed in. This server signs people in at its front door: open the address your "
                 "teacher gave you, not the app's own port.")


class NotSignedIn(LabError):
    pass


class NotAllowed(LabError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    admin: bool = False

    @property
    def label(self) -> str:
        return f"{self.name} (admin)" if self.admin else self.name


LOCAL = User(LOCAL_NAME, admin=True)


@dataclass(frozen=True)
class AuthSettings:
    mode: str
    header: str
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    admins: frozenset[str]
    forwarded_ignored: bool = False  # FORWARDED_ALLOW_IPS set and empty: uvicorn keeps the real peer address


def auth_settings() -> AuthSettings:
    """From core.config's Settings (IMGLAB_AUTH, IMGLAB_USER_HEADER, IMGLAB_TRUSTED_PROXIES, IMGLAB_ADMINS,
    FORWARDED_ALLOW_IPS), which checks them: a bad value raises ValueError there."""
    s = get_settings()
    return AuthSettings(s.auth_mode, s.auth_header, s.trusted_proxies, s.admins, s.forwarded_ignored)


def clean_name(raw: object) -> str | None:
    """A user name as a header or an identity provider gives it: trimmed, printable, at most 120 characters.
    None when there is nothing usable (an empty header is no user)."""
    if not isinstance(raw, str):
        return None
    name = raw.strip()
    if not name or len(name) > 120 or any(unicodedata.category(c)[0] == "C" for c in name):
        return None
    return name


def trusted_peer(peer: str | None, networks: tuple) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in networks)


def resolve(settings: AuthSettings, headers: Iterable[tuple[str, str]] = (), peer: str | None = None,
            oidc: Mapping[str, object] | None = None) -> User:
    """The user of one request (`headers` as (name, value) pairs, `peer` the connection's own address).
    Raises NotSignedIn when a shared mode cannot tell who it is; a header sent twice is no user."""
    if settings.mode == "none":
        return LOCAL
    if settings.mode == "proxy":
        headers = list(headers)
        # X-Forwarded-For: the app's web server (uvicorn) replaces the peer address with it for clients on
        # 127.0.0.1 unless FORWARDED_ALLOW_IPS is set and empty, so a local client could claim to be the proxy.
        # The shipped nginx recipe never sends it: unless uvicorn ignores it, a request carrying one is nobody.
        forwarded = any(k.lower() == "x-forwarded-for" for k, _ in headers) and not settings.forwarded_ignored
        if forwarded or not trusted_peer(peer, settings.trusted):
            raise NotSignedIn(NOT_SIGNED_IN)
        wanted = settings.header.lower()
        values = [v for k, v in headers if k.lower() == wanted]
        name = clean_name(values[0]) if len(values) == 1 else None
    else:
        info = oidc or {}
        if not info.get("is_logged_in"):
            raise NotSignedIn("Sign in to use the app.")
        # An address the provider has not verified could be anyone's (some providers let people type their
        # own), so it names nobody: then the provider's own id does. Addresses are compared in lower case.
        address = (clean_name(info.get("email")) or "").lower() if info.get("email_verified") is True else ""
        name = address or clean_name(info.get("sub"))
        if name is None:
            raise NotSignedIn("Your sign-in did not say who you are (no verified e-mail address, no id). Sign in "
                              "again, or ask whoever runs this server.")
        # an address is compared in lower case; a provider's id exactly as listed
        by_address = bool(address) and name in {a.lower() for a in settings.admins}
        return User(name, admin=by_address or name in settings.admins)
    if name is None:
        raise NotSignedIn(NOT_SIGNED_IN)
    return User(name, admin=name in settings.admins)


def may_change(user: User, owner: str | None) -> bool:
    """The owner, or an admin; a thing without an owner (shared) only an admin."""
    return user.admin or (bool(owner) and owner == user.name)


def require(user: User, owner: str | None, action: str) -> None:
    """Refuse `action` (e.g. 'cancel job #4') unless `user` may change what `owner` owns."""
    if may_change(user, owner):
        return
    if owner:
        raise NotAllowed(f"Only {owner} (who made it) or an admin can {action}.")
    raise NotAllowed(f"Only an admin can {action}: it is shared by everyone.")


def acting(user: User | None) -> User:
    """The user a service acts for: the one given, else the local user of the embedded default. In a shared
    mode a call that names nobody is refused, so a forgotten argument never acts as an admin."""
    if user is not None:
        return user
    if auth_settings().mode == "none":
        return LOCAL
    raise NotSignedIn(NOT_SIGNED_IN)
