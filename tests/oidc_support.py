"""A small OpenID Connect provider for tests: the authorization-code flow (with PKCE S256 when the client uses
it) as Google, Microsoft or Okta run it for Streamlit's st.login, on 127.0.0.1 in a background thread, offline.

- /.well-known/openid-configuration: the discovery document.
- /authorize: checks client_id, redirect_uri, response_type, scope and nonce, then shows an account chooser
  (one button per person in `people`; Streamlit asks with prompt=select_account) or, given login_hint, signs
  that person in at once; either way it redirects to redirect_uri with a one-time code and the client's state.
- /token: checks the client secret (HTTP Basic, or client_secret_post), the code, its redirect_uri and the
  PKCE verifier; answers an access token and an RS256-signed id_token (iss, aud, sub, email, nonce, iat, exp,
  at_hash).
- /jwks, /userinfo (bearer access token), /logout (end_session_endpoint: checks client_id, id_token_hint and
  post_logout_redirect_uri, then redirects there).

Whatever the provider refuses is also appended to `problems`, so a test can show why a sign-in went nowhere.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey


def subject(person: str) -> str:
    """The provider's own id for a person (the id_token's "sub")."""
    return "sub-" + hashlib.sha256(person.encode()).hexdigest()[:16]


@dataclass
class Grant:
    """What one authorization request asked for, kept until its code is redeemed."""
    person: str
    client_id: str
    redirect_uri: str
    nonce: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass
class OIDCProvider:
    client_id: str
    client_secret: str
    people: tuple[str, ...]
    url: str = ""
    redirect_uris: list[str] = field(default_factory=list)  # registered after the app's port is known
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": "test-key-1", "use": "sig", "alg": "RS256"}))
    unverified: set[str] = field(default_factory=set)  # people whose e-mail the provider has not verified
    forged_key: RSAKey | None = None  # set: id_tokens are signed with this key instead (same kid), a forgery
    problems: list[str] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)  # with "auth": the client auth method used
    issued: list[dict] = field(default_factory=list)  # the id_token claims handed out
    logouts: list[dict[str, str]] = field(default_factory=list)
    _codes: dict[str, Grant] = field(default_factory=dict)
    _access: dict[str, str] = field(default_factory=dict)  # access token -> person
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def metadata(self) -> dict:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "end_session_endpoint": f"{self.url}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"],
            "grant_types_supported": ["authorization_code"],
        }

    def refuse(self, why: str) -> str:
        with self._lock:
            self.problems.append(why)
        return why

    def grant(self, params: dict[str, str], person: str) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = Grant(person, params["client_id"], params["redirect_uri"], params["nonce"],
                                      params["scope"], params.get("code_challenge"),
                                      params.get("code_challenge_method"))
        return code

    def redeem(self, form: dict[str, str]) -> dict:
        """The token response for a code, or raises ValueError with the OAuth error."""
        if form.get("grant_type") != "authorization_code":
            raise ValueError("unsupported_grant_type")
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # one use only
        if grant is None:
            raise ValueError("invalid_grant: unknown or used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            raise ValueError("invalid_grant: redirect_uri differs from the authorization request's")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if grant.code_challenge_method != "S256" or digest != grant.code_challenge:
                raise ValueError("invalid_grant: PKCE code_verifier does not match")
        access_token = secrets.token_urlsafe(24)
        half = hashlib.sha256(access_token.encode()).digest()[:16]
        now = int(time.time())
        claims = {"iss": self.url, "sub": subject(grant.person),
                  "aud": grant.client_id, "iat": now, "exp": now + 600, "auth_time": now, "nonce": grant.nonce,
                  "at_hash": base64.urlsafe_b64encode(half).rstrip(b"=").decode(),
                  "email": grant.person, "email_verified": grant.person not in self.unverified,
                  "name": grant.person.split("@")[0].title()}
        id_token = jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims,
                              self.forged_key or self.key)
        with self._lock:
            self._access[access_token] = grant.person
            self.issued.append(claims)
        return {"access_token": access_token, "token_type": "Bearer", "expires_in": 600, "scope": grant.scope,
                "id_token": id_token}

    def userinfo(self, access_token: str) -> dict | None:
        with self._lock:
            person = self._access.get(access_token)
        if person is None:
            return None
        return {"sub": "sub-" + hashlib.sha256(person.encode()).hexdigest()[:16], "email": person,
                "email_verified": True}


def _client_auth(headers, form: dict[str, str]) -> tuple[str, str | None, str | None]:
    """(method, client_id, client_secret) of a token request."""
    header = headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            raw = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return "client_secret_basic", None, None
        client_id, _, secret = raw.partition(":")
        return "client_secret_basic", unquote(client_id), unquote(secret)
    if "client_secret" in form:
        return "client_secret_post", form.get("client_id"), form.get("client_secret")
    return "none", form.get("client_id"), None


def _handler(provider: OIDCProvider):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict, extra: dict | None = None) -> None:
            self._send(status, json.dumps(data).encode(), "application/json", extra)

        def _page(self, status: int, text: str) -> None:
            self._send(status, f"<!doctype html><title>Test IdP</title><body>{text}</body>".encode(),
                       "text/html; charset=utf-8")

        def _redirect(self, location: str) -> None:
            self._send(302, b"", "text/plain", {"Location": location})

        def do_GET(self):  # noqa: N802
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(200, provider.metadata())
            elif parts.path == "/jwks":
                self._json(200, {"keys": [provider.key.as_dict(private=False)]})
            elif parts.path == "/authorize":
                self._authorize(params)
            elif parts.path == "/authorize/choose":
                self._choose(params)
            elif parts.path == "/userinfo":
                header = self.headers.get("Authorization", "")
                info = provider.userinfo(header[7:]) if header.startswith("Bearer ") else None
                if info is None:
                    self._json(401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
                else:
                    self._json(200, info)
            elif parts.path == "/logout":
                self._logout(params)
            else:
                self._page(404, "not found")

        def do_POST(self):  # noqa: N802
            if urlsplit(self.path).path != "/token":
                self._page(404, "not found")
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            method, client_id, secret = _client_auth(self.headers, form)
            with provider._lock:
                provider.token_requests.append({**form, "auth": method})
            if client_id != provider.client_id or not secret or not secrets.compare_digest(
                    secret, provider.client_secret):
                provider.refuse(f"token: client authentication failed ({method}, client_id={client_id!r})")
                self._json(401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="token"'})
                return
            try:
                body = provider.redeem(form)
            except ValueError as exc:
                provider.refuse(f"token: {exc}")
                self._json(400, {"error": str(exc).split(":")[0], "error_description": str(exc)})
                return
            self._json(200, body, {"Pragma": "no-cache"})

        def _check_authorize(self, params: dict[str, str]) -> str | None:
            if params.get("client_id") != provider.client_id:
                return provider.refuse(f"authorize: unknown client_id {params.get('client_id')!r}")
            if params.get("redirect_uri") not in provider.redirect_uris:
                return provider.refuse(f"authorize: redirect_uri {params.get('redirect_uri')!r} is not registered "
                                       f"({provider.redirect_uris})")
            if params.get("response_type") != "code":
                return provider.refuse(f"authorize: response_type {params.get('response_type')!r}")
            if "openid" not in params.get("scope", "").split():
                return provider.refuse(f"authorize: scope {params.get('scope')!r} lacks openid")
            if not params.get("nonce") or not params.get("state"):
                return provider.refuse("authorize: nonce or state missing")
            if "code_challenge" in params and params.get("code_challenge_method") != "S256":
                return provider.refuse("authorize: only S256 PKCE is supported")
            return None

        def _sign_in(self, params: dict[str, str], person: str) -> None:
            code = provider.grant(params, person)
            self._redirect(params["redirect_uri"] + "?" + urlencode({"code": code, "state": params["state"]}))

        def _authorize(self, params: dict[str, str]) -> None:
            with provider._lock:
                provider.authorize_requests.append(dict(params))
            why = self._check_authorize(params)
            if why:
                self._page(400, html.escape(why))
                return
            hint = params.get("login_hint")
            if hint in provider.people:
                self._sign_in(params, hint)
                return
            carried = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                              for k, v in params.items())
            buttons = "".join(f'<button type="submit" name="person" value="{html.escape(p)}">{html.escape(p)}'
                              f"</button>" for p in provider.people)
            self._page(200, f'<h1>Choose an account</h1><form action="/authorize/choose" method="get">'
                            f"{carried}{buttons}</form>")

        def _choose(self, params: dict[str, str]) -> None:
            person = params.pop("person", None)
            why = self._check_authorize(params) or (
                None if person in provider.people else provider.refuse(f"authorize: no such person {person!r}"))
            if why:
                self._page(400, html.escape(why))
                return
            self._sign_in(params, person)

        def _logout(self, params: dict[str, str]) -> None:
            with provider._lock:
                provider.logouts.append(dict(params))
            target = params.get("post_logout_redirect_uri")
            if params.get("client_id") != provider.client_id or target not in provider.redirect_uris:
                self._page(400, html.escape(provider.refuse(f"logout: refused {params}")))
                return
            hint = params.get("id_token_hint")
            if hint:
                try:
                    jwt.decode(hint, provider.key, algorithms=["RS256"])
                except (JoseError, ValueError) as exc:
                    self._page(400, html.escape(provider.refuse(f"logout: bad id_token_hint ({exc!r})")))
                    return
            self._redirect(target)

    return Handler


@contextmanager
def oidc_provider(client_id: str, client_secret: str, people: tuple[str, ...]):
    """An OIDCProvider serving on a free 127.0.0.1 port for the duration of the block."""
    provider = OIDCProvider(client_id, client_secret, people)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    server.daemon_threads = True
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="test-oidc-provider", daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
