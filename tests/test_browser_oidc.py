"""IMGLAB_AUTH=oidc end to end: the app's "Sign in" button (Streamlit's own st.login, Authlib underneath) signs
people in through an OpenID Connect provider and back, in headless Chromium, offline. The provider is the small
one in tests/oidc_support.py (authorization code + PKCE, RS256 id_tokens, a JWKS, an end-session endpoint);
the [auth] section the README shows lives in a secrets.toml in the test's own folder, which Streamlit reads
through STREAMLIT_SECRETS_FILES (its `secrets.files` option), never in the repository's .streamlit/."""
import base64
import json
import re
import secrets

import pytest

from tests.browser_support import ROOT, browser, streamlit_server, sync_api  # noqa: F401  (fixtures)
from tests.oidc_support import oidc_provider, subject
from joserfc.jwk import RSAKey

CLIENT_ID = "imglab-test-client"
CLIENT_SECRET = "s3cret-" + secrets.token_hex(8)
PEOPLE = ("alice@school.test", "teacher@school.test", "bob@school.test")
SIGN_IN_PLEASE = "Sign in to use the app."


@pytest.fixture(scope="module")
def oidc_app(tmp_path_factory):
    """The app in oidc mode, its secrets pointing at the test provider; yields (app url, provider)."""
    repo_secrets = ROOT / ".streamlit" / "secrets.toml"
    had_repo_secrets = repo_secrets.exists()
    data_dir = tmp_path_factory.mktemp("oidc-data")
    secrets_file = tmp_path_factory.mktemp("oidc-secrets") / "secrets.toml"
    with oidc_provider(CLIENT_ID, CLIENT_SECRET, PEOPLE) as provider:
        # README's [auth] section; "{port}" is Streamlit's own placeholder for the port it serves on
        secrets_file.write_text(
            "[auth]\n"
            'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{secrets.token_hex(32)}"\n'
            f'client_id = "{CLIENT_ID}"\n'
            f'client_secret = "{CLIENT_SECRET}"\n'
            f'server_metadata_url = "{provider.metadata_url}"\n')
        env = {"IMGLAB_AUTH": "oidc", "IMGLAB_ADMINS": "teacher@school.test",
               "STREAMLIT_SECRETS_FILES": str(secrets_file),
               "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with streamlit_server(data_dir, env) as url:
            provider.redirect_uris.append(f"{url}/oauth2callback")  # what the teacher registers at the provider
            yield url, provider
    assert repo_secrets.exists() == had_repo_secrets  # nothing written into the repository's .streamlit/


@pytest.fixture
def context(browser):  # noqa: F811
    """A fresh browser profile (no cookies): one person at one computer."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    yield ctx
    ctx.close()


def _sidebar_says(page, text: str) -> None:
    """The sidebar's identity line reads exactly `text` (plain text, so an e-mail address is shown as it is)."""
    sync_api.expect(page.get_by_test_id("stSidebar").get_by_text(text, exact=True)).to_have_count(1, timeout=60_000)


def _sign_in_screen(page) -> None:
    """The gate: why, and the button; nothing of the app."""
    page.get_by_text(SIGN_IN_PLEASE, exact=True).wait_for()
    page.get_by_role("button", name="Sign in", exact=True).wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    assert page.get_by_role("heading", name="Playground").count() == 0
    assert page.get_by_text(re.compile("Signed in as")).count() == 0
    assert page.get_by_role("button", name="Sign out").count() == 0


def _sign_in(page, app_url: str, provider, person: str, label: str | None = None) -> None:
    """From the app's gate, through the provider's account chooser, back into the app as `person` (shown as
    `label`, by default the person's address, marked admin for the teacher)."""
    page.goto(app_url)
    _sign_in_screen(page)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"{provider.url}/authorize?**")
    page.get_by_role("heading", name="Choose an account").wait_for()
    page.get_by_role("button", name=person, exact=True).click()
    page.wait_for_url(re.compile(re.escape(app_url) + r"/?$"))
    label = label or (f"{person} (admin)" if person == "teacher@school.test" else person)
    _sidebar_says(page, f"Signed in as {label}")
    page.get_by_role("heading", name="Playground").wait_for()


def test_a_fresh_visitor_sees_only_the_sign_in_screen(oidc_app, context):
    url, provider = oidc_app
    page = context.new_page()
    page.goto(url)
    _sign_in_screen(page)
    page.goto(url + "/results")  # a page's own address is gated too
    _sign_in_screen(page)
    assert page.get_by_role("heading", name="Results").count() == 0
    assert provider.authorize_requests == []  # nobody went to the provider by themselves


def test_signing_in_through_the_provider(oidc_app, browser):  # noqa: F811
    url, provider = oidc_app
    alice = browser.new_context(viewport={"width": 1400, "height": 1000})
    teacher = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        alice_page = alice.new_page()
        alice_page.set_default_timeout(60_000)
        _sign_in(alice_page, url, provider, "alice@school.test")

        # what Streamlit asked the provider for, and how it redeemed the code
        asked = provider.authorize_requests[-1]
        assert asked["client_id"] == CLIENT_ID and asked["response_type"] == "code"
        assert asked["redirect_uri"] == f"{url}/oauth2callback"
        assert set(asked["scope"].split()) == {"openid", "email", "profile"}
        assert asked["code_challenge_method"] == "S256" and asked["nonce"]
        redeemed = provider.token_requests[-1]
        assert redeemed["auth"] == "client_secret_basic" and redeemed["code_verifier"]
        assert provider.issued[-1]["email"] == "alice@school.test"
        assert provider.issued[-1]["nonce"] == asked["nonce"]
        cookies = {c["name"]: c for c in alice.cookies()}
        assert cookies["_streamlit_user"]["httpOnly"]

        alice_page.reload()  # the identity cookie carries over to a new session of the same browser
        _sidebar_says(alice_page, "Signed in as alice@school.test")
        alice_page.goto(url + "/results")
        _sidebar_says(alice_page, "Signed in as alice@school.test")
        alice_page.get_by_role("heading", name="Results").wait_for()

        teacher_page = teacher.new_page()
        teacher_page.set_default_timeout(60_000)
        _sign_in(teacher_page, url, provider, "teacher@school.test")
        assert provider.issued[-1]["email"] == "teacher@school.test"

        alice_page.reload()  # each browser keeps its own person
        _sidebar_says(alice_page, "Signed in as alice@school.test")
        assert alice_page.get_by_text("(admin)", exact=False).count() == 0
        assert teacher_page.get_by_text("Signed in as alice", exact=False).count() == 0
        assert provider.problems == []
    finally:
        alice.close()
        teacher.close()


def test_signing_out_returns_to_the_sign_in_screen(oidc_app, context):
    url, provider = oidc_app
    page = context.new_page()
    _sign_in(page, url, provider, "bob@school.test")
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(re.escape(url) + r"/?$"))
    _sign_in_screen(page)
    # Streamlit went through the provider's end-session endpoint with bob's id_token as the hint
    ended = provider.logouts[-1]
    assert ended["client_id"] == CLIENT_ID and ended["post_logout_redirect_uri"] == f"{url}/oauth2callback"
    payload = ended["id_token_hint"].split(".")[1]
    hint = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert hint["email"] == "bob@school.test"
    assert "_streamlit_user" not in {c["name"] for c in context.cookies()}
    page.reload()  # still signed out in a new session
    _sign_in_screen(page)
    assert provider.problems == []


@pytest.mark.parametrize("fault", ["wrong client secret", "forged id_token"])
def test_a_failed_sign_in_leaves_the_visitor_outside(oidc_app, context, fault):
    """The app's configured secret must match the provider's, and an id_token the provider's key did not sign
    is not believed: either way the person comes back to the sign-in screen, not into the app."""
    url, provider = oidc_app
    page = context.new_page()
    page.goto(url)
    _sign_in_screen(page)
    saved = provider.client_secret, provider.forged_key
    before = len(provider.issued)
    if fault == "wrong client secret":
        provider.client_secret = "another-secret"
    else:
        provider.forged_key = RSAKey.generate_key(2048, parameters={"kid": provider.key.kid})
    try:
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{provider.url}/authorize?**")
        page.get_by_role("button", name="alice@school.test", exact=True).click()
        page.wait_for_url(re.compile(re.escape(url) + r"/?$"))
        _sign_in_screen(page)
    finally:
        provider.client_secret, provider.forged_key = saved
    assert "_streamlit_user" not in {c["name"] for c in context.cookies()}
    if fault == "wrong client secret":
        assert len(provider.issued) == before
        assert provider.problems.pop().startswith("token: client authentication failed")
    else:
        assert len(provider.issued) == before + 1  # the provider answered; the app refused the signature
    assert provider.problems == []


def test_an_address_the_provider_did_not_verify_names_nobody(oidc_app, context):
    """Some providers let people type their own e-mail address: an unverified teacher@ address must not make
    its holder the teacher (an admin). The person is known by the provider's own id instead."""
    url, provider = oidc_app
    provider.unverified.add("teacher@school.test")
    try:
        page = context.new_page()
        _sign_in(page, url, provider, "teacher@school.test", label=subject("teacher@school.test"))
        assert page.get_by_text("(admin)", exact=False).count() == 0
        assert provider.issued[-1]["email_verified"] is False
    finally:
        provider.unverified.discard("teacher@school.test")
