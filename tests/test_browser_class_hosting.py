"""Hosting for a class, as the README tells a teacher to set it up: Debian's nginx with HTTP basic auth in front
(the shipped deploy/nginx/imglab.conf), the app behind it in proxy mode, and students in Chromium. Test-only
deviation: nginx connects to the app from 127.0.0.2 (proxy_bind), the only address the app trusts, so that a
browser going straight to the app's port from 127.0.0.1 is a stranger even on this one machine."""
import base64
import io
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from tests.browser_support import ROOT, browser, click_until, settle, streamlit_server  # noqa: F401  (fixtures)
from tests.nginx_support import USERS, forging_relay, nginx_proxy

PROXY_ONLY = "127.0.0.2"


@pytest.fixture(scope="module")
def hosted(tmp_path_factory):
    """The app in proxy mode (FORWARDED_ALLOW_IPS empty, as the README's start line has it) behind nginx."""
    data_dir = tmp_path_factory.mktemp("hosted-data")
    env = {"IMGLAB_AUTH": "proxy", "IMGLAB_TRUSTED_PROXIES": PROXY_ONLY, "IMGLAB_ADMINS": "teacher",
           "FORWARDED_ALLOW_IPS": ""}
    with streamlit_server(data_dir, env) as app_url, nginx_proxy(app_url, proxy_bind=PROXY_ONLY) as proxy:
        yield proxy, app_url, data_dir


def _status(url: str, user: str | None = None, password: str | None = None) -> int:
    request = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        assert err.status != 401 or "Basic" in err.headers.get("WWW-Authenticate", ""), err.headers
        return err.status


def test_nginx_asks_for_a_password_before_anything_reaches_the_app(hosted):
    proxy, *_ = hosted
    for path in ("/", "/_stcore/health", "/_stcore/stream", "/results"):
        assert _status(proxy.url + path) == 401, path
    assert _status(proxy.url + "/", "alice", "wrong") == 401
    assert _status(proxy.url + "/", "mallory", "alice-pw") == 401
    assert _status(proxy.url + "/", "alice", USERS["alice"]) == 200
    assert _status(proxy.url + "/_stcore/health", "teacher", USERS["teacher"]) == 200


def _open(browser, url: str, **context_args):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, **context_args)
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(url)
    return context, page


def _signed_in(page, label: str) -> None:
    page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {label}", exact=True).wait_for()
    page.get_by_role("heading", name="Playground").wait_for()


def _login(name: str) -> dict:
    return {"http_credentials": {"username": name, "password": USERS[name]}}


def _around_nginx(browser, app_url: str, forged: dict) -> None:
    with forging_relay(app_url, forged) as (url, forged_lines):
        context, page = _open(browser, url)
        try:
            page.get_by_text(re.compile("not signed in|Signed in as")).filter(visible=True).first.wait_for()  # whichever comes
            settle(page)
            assert page.get_by_text("Signed in as").count() == 0
            assert page.get_by_text("not signed in", exact=False).count() >= 1
            assert page.get_by_role("heading", name="Playground").count() == 0  # stopped before the content
        finally:
            context.close()
    assert any(line.startswith("GET /_stcore/stream") for line in forged_lines), forged_lines


def test_two_students_at_once_each_see_their_own_name(browser, hosted):
    proxy, *_ = hosted
    alice, alice_page = _open(browser, proxy.url, **_login("alice"))
    bob, bob_page = _open(browser, proxy.url, **_login("bob"))
    try:
        _signed_in(alice_page, "alice")
        _signed_in(bob_page, "bob")
        alice_page.reload()  # a second visit of the same student is still that student
        _signed_in(alice_page, "alice")
        settle(bob_page)
        assert bob_page.get_by_text("Signed in as alice").count() == 0
        assert alice_page.get_by_text("Signed in as bob").count() == 0
        assert alice_page.get_by_text("(admin)").count() == 0
    finally:
        alice.close()
        bob.close()


def test_the_teacher_is_an_admin(browser, hosted):
    proxy, *_ = hosted
    context, page = _open(browser, proxy.url + "/results", **_login("teacher"))
    try:
        page.get_by_test_id("stSidebar").get_by_text("Signed in as teacher (admin)", exact=True).wait_for()
        page.get_by_role("heading", name="Results").wait_for()
    finally:
        context.close()


def test_a_name_the_browser_sends_itself_is_replaced_by_nginx(browser, hosted):
    """alice's requests all carry `X-Remote-User: teacher` (a relay adds it, the websocket hand-shake included):
    nginx's log shows that header arriving on the websocket, and the app still sees alice, because nginx
    overwrites it (and drops the made-up X-Forwarded-For)."""
    proxy, *_ = hosted
    with forging_relay(proxy.url, {"X-Remote-User": "teacher", "X-Forwarded-For": "127.0.0.1"}) as (url, forged):
        context, page = _open(browser, url, **_login("alice"))
        try:
            _signed_in(page, "alice")
            settle(page)
            assert page.get_by_text("Signed in as teacher").count() == 0
        finally:
            context.close()
    assert any(line.startswith("GET /_stcore/stream") for line in forged), forged
    # nginx logs a websocket when it closes, a moment after the browser's context has gone (once more than 15 s
    # on a loaded 2-core machine)
    deadline = time.monotonic() + 45
    while not _alice_streams(proxy) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert any('sent_user="teacher"' in line for line in _alice_streams(proxy)), (proxy.log()[-1500:],
                                                                                   proxy.errors()[-2500:])


def _alice_streams(proxy) -> list[str]:
    return [line for line in proxy.log().splitlines() if "/_stcore/stream" in line and line.startswith("alice ")]


@pytest.mark.parametrize("forged", [{"X-Remote-User": "teacher"},
                                    # uvicorn would take this as the peer address of a client on 127.0.0.1,
                                    # unless FORWARDED_ALLOW_IPS is empty (the README's start line)
                                    {"X-Remote-User": "teacher", "X-Forwarded-For": PROXY_ONLY}],
                         ids=["header", "header-and-forwarded-for"])
def test_going_around_nginx_to_the_apps_own_port_signs_nobody_in(browser, hosted, forged):
    """Someone on the server itself talks to the app's port with a made-up name: the app sees a connection from
    127.0.0.1, not from nginx's 127.0.0.2, and lets nobody in."""
    _, app_url, _ = hosted
    _around_nginx(browser, app_url, forged)


def test_a_made_up_forwarded_for_is_refused_even_when_uvicorn_believes_it(browser, tmp_path):
    """Started without FORWARDED_ALLOW_IPS, uvicorn (the app's web server) takes X-Forwarded-For from any client
    on 127.0.0.1 as the peer address, so a local client can claim to be nginx's 127.0.0.2. nginx never sends that
    header (deploy/nginx/imglab.conf clears it), so a hand-shake carrying one is nobody."""
    env = {"IMGLAB_AUTH": "proxy", "IMGLAB_TRUSTED_PROXIES": PROXY_ONLY, "IMGLAB_ADMINS": "teacher"}
    with streamlit_server(tmp_path, env) as app_url:
        _around_nginx(browser, app_url, {"X-Remote-User": "teacher", "X-Forwarded-For": PROXY_ONLY})


def test_a_student_uploads_and_classifies_through_nginx(browser, hosted, tmp_path):
    """An upload passes nginx (body size, streaming, the app's XSRF cookie) and the run is stored."""
    from core.data.builtin import load_builtin
    from tests.conftest import encode

    proxy, *_ = hosted
    cat = tmp_path / "chelsea.jpg"
    cat.write_bytes(encode(load_builtin("chelsea"), "JPEG", quality=92))
    context, page = _open(browser, proxy.url, **_login("bob"))
    try:
        _signed_in(page, "bob")
        page.locator('input[type="file"]').first.set_input_files(str(cat))
        page.get_by_text("chelsea.jpg").filter(visible=True).first.wait_for()
        settle(page)
        page.get_by_role("button", name="Classify").click()
        page.get_by_text("Top-5: tiger cat").wait_for()
        page.get_by_text("Stored as run #", exact=False).filter(visible=True).first.wait_for()
        assert page.get_by_text("Traceback").count() == 0
    finally:
        context.close()
    assert any(line.startswith('bob "PUT /_stcore/upload_file/') for line in proxy.log().splitlines()), \
        proxy.log()[-2000:]


# -- what two students can and cannot do to each other's work -------------------------------------------------
def _store(data_dir) -> str:
    """The app's results store (its default: results.db in the data folder), read by core code in this process."""
    return f"sqlite:///{data_dir / 'results.db'}"


@pytest.fixture
def visit(browser, hosted, request):
    """visit(name, path, heading): a page of the app, signed in through nginx as `name`, in its own browser
    context (its own cookies and session), opened and settled. Closed afterwards; when the test failed, each
    page's screenshot is left in test-artifacts/."""
    proxy = hosted[0]
    opened = []
    failed_before = request.session.testsfailed

    def open_as(name: str, path: str, heading: str):
        context, page = _open(browser, proxy.url + path, **_login(name))
        opened.append((name, context, page))
        page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name}", exact=False).wait_for()
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        settle(page)
        return page

    yield open_as
    failed = request.session.testsfailed > failed_before  # the call's report is counted before teardown
    for name, context, page in opened:
        if failed:
            artifacts = ROOT / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            try:
                page.screenshot(path=str(artifacts / f"{request.node.name}-{name}.png"), full_page=True)
            except Exception:  # noqa: BLE001  (a page that broke is no reason to hide the test's own error)
                pass
        context.close()


def _keyed(page, key: str):
    """The element a widget with this key renders (Streamlit marks its container with st-key-<key>)."""
    return page.locator(f".st-key-{key}")


def test_only_the_owner_may_delete_a_run(visit, hosted, tmp_path):
    from core.data.builtin import load_builtin
    from db import repository
    from tests.conftest import encode

    proxy, _, data_dir = hosted
    cat = tmp_path / "alice-cat.jpg"
    cat.write_bytes(encode(load_builtin("chelsea"), "JPEG", quality=92))
    alice = visit("alice", "/", "Playground")
    alice.locator('input[type="file"]').first.set_input_files(str(cat))
    alice.get_by_text("alice-cat.jpg").filter(visible=True).first.wait_for()
    settle(alice)
    alice.get_by_role("button", name="Classify").click()
    stored = alice.get_by_text(re.compile(r"Stored as run #\d+ ")).first
    stored.wait_for()
    run = int(re.search(r"run #(\d+)", stored.inner_text()).group(1))
    assert repository.run_detail(_store(data_dir), run).owner == "alice"

    bob = visit("bob", f"/results?run={run}", "Results")
    bob.get_by_text(f"Run #{run} · ").filter(visible=True).first.wait_for()
    bob.get_by_text("Run by alice.").wait_for()  # everyone may look
    settle(bob)
    assert bob.get_by_role("button", name=f"Delete run #{run}").count() == 0
    assert _keyed(bob, "res_delete").count() == 0

    alice.goto(proxy.url + f"/results?run={run}")
    alice.get_by_text(f"Run #{run} · ").filter(visible=True).first.wait_for()
    alice.get_by_text("Run by alice.").wait_for()
    settle(alice)
    alice.get_by_role("button", name=f"Delete run #{run}").click()
    alice.get_by_text(f"Delete run #{run} with its per-image values?").wait_for()
    alice.get_by_role("button", name="Yes, delete it").click()
    alice.get_by_role("button", name=f"Delete run #{run}").wait_for(state="detached")
    settle(alice)
    assert repository.run_detail(_store(data_dir), run) is None
    assert alice.get_by_text("Traceback").count() == 0

    bob.goto(proxy.url + f"/results?run={run}")  # gone for bob too
    bob.get_by_text(re.compile(rf"There is no run #{run}\.|No runs stored yet")).filter(visible=True).first.wait_for()
    assert bob.get_by_text(f"Run #{run} · ").count() == 0


def _beating(url: str, job_id: int, stop) -> None:
    """Stand in for a live worker: a fresh heartbeat every second while the job is running."""
    from sqlalchemy import update

    from db.models import JobRow, utcnow
    from db.session import session_scope

    while not stop.wait(1.0):
        try:
            with session_scope(url) as s:
                s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.status == "running")
                          .values(heartbeat_at=utcnow()))
        except Exception:  # noqa: BLE001  (a locked store: the next beat comes a second later)
            pass


def _job_line(page, job_id: int):
    """A job's line in the Benchmark page's jobs panel: '<status icon's name> #<id> <title>', then
    '<status> on <device> · by <owner>'."""
    return page.get_by_test_id("stMarkdown").filter(has_text=re.compile(rf"(^|\s)#{job_id} "))


def test_only_the_owner_may_cancel_a_job(visit, hosted):
    """alice holds the CPU slot with a running job (made here, kept alive by a heartbeat, no process), so the
    benchmark she launches on the page waits behind it. bob sees both jobs, by alice, with no Cancel; alice
    cancels the queued one, then the running one."""
    import threading

    from sqlalchemy import update

    from db import jobs as job_rows
    from db.models import JobRow, utcnow
    from db.session import session_scope
    from tests.browser_support import choose

    _, _, data_dir = hosted
    url = _store(data_dir)
    alice = visit("alice", "/benchmark", "Benchmark")  # the store exists from here on
    running = job_rows.create(url, "benchmark", "alice's long benchmark", {}, "cpu", owner="alice")
    with session_scope(url) as s:
        s.execute(update(JobRow).where(JobRow.id == running)
                  .values(status="running", started_at=utcnow(), heartbeat_at=utcnow(), message="running"))
    stop = threading.Event()
    beat = threading.Thread(target=_beating, args=(url, running, stop), daemon=True)
    beat.start()
    queued = None
    try:
        _keyed(alice, f"bm_jobs_cancel_{running}").wait_for()  # the panel's poll brings it in
        choose(alice, "Models", "Small CNN (digits)", search="CNN")
        choose(alice, "Device", "cpu")
        alice.get_by_role("button", name="Launch benchmark").click()
        notice = alice.get_by_text(re.compile(r"^Job #\d+ queued\. It starts when the jobs before it on cpu ")).first
        notice.wait_for()
        queued = int(re.search(r"#(\d+)", notice.inner_text()).group(1))
        info = job_rows.get(url, queued)
        assert (info.status, info.owner, info.device) == ("queued", "alice", "cpu")

        bob = visit("bob", "/benchmark", "Benchmark")
        _job_line(bob, queued).filter(has_text="queued on cpu · by alice").wait_for()
        _job_line(bob, running).filter(has_text="running on cpu · by alice").wait_for()
        settle(bob)
        assert _keyed(bob, f"bm_jobs_cancel_{queued}").count() == 0
        assert _keyed(bob, f"bm_jobs_cancel_{running}").count() == 0
        assert bob.get_by_role("button", name="Cancel").count() == 0

        _keyed(alice, f"bm_jobs_cancel_{queued}").get_by_role("button", name="Cancel").click()
        alice.get_by_text(f"Job #{queued} was cancelled.").wait_for()
        assert job_rows.get(url, queued).status == "cancelled"
        settle(alice)
        _keyed(alice, f"bm_jobs_cancel_{running}").get_by_role("button", name="Cancel").click()
        _keyed(alice, f"bm_jobs_cancel_{running}").wait_for(state="detached")
        info = job_rows.get(url, running)
        assert (info.status, info.message) == ("cancelled", "cancelled by the user")
        assert job_rows.get(url, queued).status == "cancelled"  # not started by the freed slot
        _job_line(bob, running).filter(has_text="cancelled on cpu · by alice").wait_for()  # bob's poll sees it
        _job_line(bob, queued).filter(has_text="cancelled on cpu · by alice").wait_for()
        assert alice.get_by_text("Traceback").count() == 0
    finally:
        stop.set()
        beat.join(5)
        for job in (queued, running):  # never leave the slot held (nor a launched job to start) for other tests
            if job is not None:
                job_rows.finish(url, job, "cancelled", "test cleanup", from_states=("queued", "starting", "running"))


def _uploads_of(data_dir, title: str) -> list[dict]:
    """The manifests (owner, title, ...) of the uploaded datasets whose title has `title` in it."""
    import json

    manifests = [json.loads(p.read_text()) for p in (data_dir / "datasets").glob("*/.imglab.json")]
    return [m for m in manifests if title in m["title"]]


def test_only_the_owner_manages_an_uploaded_dataset(visit, hosted, tmp_path):
    from tests.test_uploads import make_zip, png

    _, _, data_dir = hosted
    archive = tmp_path / "alice-pets.zip"
    archive.write_bytes(make_zip({"cats/a.png": png(10), "dogs/b.png": png(200)}))
    alice = visit("alice", "/benchmark", "Benchmark")
    alice.get_by_text("Upload a dataset (zip)").click()
    alice.locator('input[type="file"]').first.set_input_files(str(archive))
    alice.get_by_text("alice-pets.zip").filter(visible=True).first.wait_for()
    settle(alice)
    alice.get_by_role("button", name="Add dataset").click()
    added = alice.get_by_text(re.compile(r"^Added .*alice-pets.*\(2 images, classification\)\.$"))
    added.wait_for()
    label = re.match(r"^Added (.*)\.$", added.inner_text()).group(1)
    assert [m["owner"] for m in _uploads_of(data_dir, "alice-pets")] == ["alice"]

    bob = visit("bob", "/benchmark", "Benchmark")
    bob.get_by_text("Your uploaded datasets").click()
    bob.get_by_text("You have no datasets to manage yet.").wait_for()
    settle(bob)
    for key in ("bm_own_pick", "bm_own_title", "bm_own_rename", "bm_own_delete"):
        assert _keyed(bob, key).count() == 0, key
    assert bob.get_by_text(label).count() == 0
    _keyed(bob, "bm_dataset").get_by_role("combobox").click()  # but bob may benchmark on it
    bob.get_by_role("option", name=f"uploaded: {label} by alice").wait_for()
    bob.keyboard.press("Escape")

    alice.reload()
    alice.get_by_role("heading", name="Benchmark", exact=True).wait_for()
    settle(alice)
    alice.get_by_text("Your uploaded datasets").click()
    pick = _keyed(alice, "bm_own_pick").get_by_role("combobox")
    pick.wait_for()
    assert pick.input_value() == f"{label}, 0.0 MB"
    click_until(alice, _keyed(alice, "bm_own_delete").get_by_role("button"),
                alice.get_by_text(f"Delete {label}, 0.0 MB and its files?"))
    settle(alice)
    _keyed(alice, "bm_own_yes").get_by_role("button", name="Yes, delete it").click()
    alice.get_by_text(f"Deleted {label}, 0.0 MB.").wait_for()
    alice.get_by_text("You have no datasets to manage yet.").wait_for()
    assert _uploads_of(data_dir, "alice-pets") == []
    assert alice.get_by_text("Traceback").count() == 0


def test_only_an_admin_points_a_shared_model_at_a_weights_file(visit):
    teacher = visit("teacher", "/models", "Models")
    teacher.get_by_role("heading", name="Weights file of a shared model").wait_for()
    teacher.get_by_role("button", name="Use this file").wait_for()
    assert teacher.get_by_role("button", name="Forget the file").count() == 1

    bob = visit("bob", "/models", "Models")
    bob.get_by_role("heading", name="Weights file of a shared model").wait_for()
    bob.get_by_text("only an admin can point them at another weights file").wait_for()
    settle(bob)
    assert bob.get_by_role("button", name="Use this file").count() == 0
    assert bob.get_by_role("button", name="Forget the file").count() == 0
    assert _keyed(bob, "wpath_path").count() == 0


def test_a_class_votes_in_the_arena_and_each_vote_is_its_own(visit, hosted):
    """The teacher opens a round in the browser; alice and bob vote blind through nginx, each under the name nginx
    vouches for; alice's standings update live with bob's vote; a student has no round controls; a closed round
    takes no more votes."""
    from db import arena as rows

    proxy, _, data_dir = hosted
    teacher = visit("teacher", "/arena?view=rounds", "Arena")
    teacher.get_by_label("Title").fill("Denoising in class")
    teacher.get_by_label("Title").press("Enter")
    settle(teacher)
    teacher.get_by_role("button", name="Open round").click()
    teacher.get_by_text(re.compile(r"Job #\d+ (queued|is running|finished)")).filter(visible=True).first.wait_for()
    # the pictures are computed in a background job; the list of rounds polls until the round is open
    teacher.get_by_text(re.compile(r"#\d+ Denoising in class \(Denoise, open\)")).wait_for(timeout=180_000)
    [found] = rows.rounds(_store(data_dir))
    assert found.owner == "teacher" and len(found.models) == 4 and found.status == "open"

    alice = visit("alice", f"/arena?view=vote&round={found.id}", "Arena")
    bob = visit("bob", f"/arena?view=vote&round={found.id}", "Arena")
    alice.get_by_role("button", name="A is better").click()
    alice.get_by_text("Vote stored.", exact=True).wait_for()
    settle(alice)
    alice.goto(proxy.url + f"/arena?view=standings&round={found.id}")
    alice.get_by_text("1 from 1 person").wait_for()
    bob.get_by_role("button", name="B is better").click()
    bob.get_by_text("Vote stored.", exact=True).wait_for()
    alice.get_by_text("2 from 2 people").wait_for(timeout=30_000)  # no reload: the standings poll
    votes = rows.votes(_store(data_dir), found.id)
    assert sorted(votes.voter) == ["alice", "bob"]

    bob.goto(proxy.url + "/arena?view=rounds")
    bob.get_by_text("Rounds are opened by a teacher", exact=False).wait_for()
    settle(bob)
    for label in ("Open round", "Close", "Delete"):
        assert bob.get_by_role("button", name=label, exact=True).count() == 0

    teacher.goto(proxy.url + "/arena?view=rounds")
    teacher.get_by_role("button", name="Close", exact=True).click()
    teacher.get_by_role("button", name="Reopen", exact=True).wait_for()
    bob.goto(proxy.url + f"/arena?view=vote&round={found.id}")
    bob.get_by_text(f"Round #{found.id} is closed: its votes are final.").wait_for()
    assert rows.get_round(_store(data_dir), found.id).status == "closed"

    # the teacher's votes export, as the browser saves it: one row per vote with its voter, for a spreadsheet
    teacher.goto(proxy.url + f"/arena?view=standings&round={found.id}")
    # the standings' CSV first, then the votes' (a table's own toolbar has a hidden "Download as CSV" too)
    votes_csv = teacher.get_by_test_id("stDownloadButton").filter(has_text="CSV").nth(1)
    votes_csv.wait_for()
    settle(teacher)
    with teacher.expect_download() as download:
        votes_csv.click()
    saved = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == f"round-{found.id}-votes.csv"
    assert saved.startswith(b"\xef\xbb\xbf")
    exported = pd.read_csv(io.BytesIO(saved), encoding="utf-8-sig")
    assert sorted(exported["Voter"]) == ["alice", "bob"] and len(exported) == 2
    # the table's own download (which writes a typed formula as a live one) is off: only the app's buttons remain
    assert teacher.get_by_role("button", name="Download as CSV").count() == 0
    for page in (alice, bob, teacher):
        assert page.get_by_text("Traceback").count() == 0
