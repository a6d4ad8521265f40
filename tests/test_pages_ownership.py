"""Signed-in users on the pages (AppTest, Streamlit's own login): who is shown, and which buttons each user gets
for someone else's job, run, dataset, model and the shared models' weights."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import services
from core.users import User
from db import jobs as job_rows
from db import repository
from db.models import JobRow, utcnow
from db.session import session_scope
from sqlalchemy import update
from tests.conftest import shown
from tests.test_db import make_record
from tests.test_uploads import make_zip, png

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def signed_in(db_url, monkeypatch):
    """Open the app as a user of a server that signs people in with st.login (OIDC); teacher@school is admin."""
    from core.config import get_settings

    monkeypatch.setenv("IMGLAB_AUTH", "oidc")
    monkeypatch.setenv("IMGLAB_ADMINS", "teacher@school")
    get_settings.cache_clear()

    def open_as(email: str | None, page: str | None = None, configured: bool = True) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.user = {"is_logged_in": email is not None, **({"email": email, "email_verified": True} if email else {})}
        if configured:
            at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                                  "client_id": "lab", "client_secret": "s",
                                  "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception
        return at

    return open_as


def sidebar_text(at) -> str:
    return " ".join(t.value for t in at.sidebar.text)


def test_a_visitor_who_is_not_signed_in_sees_only_the_sign_in(signed_in):
    at = signed_in(None)
    assert [shown(e.value) for e in at.error] == ["Sign in to use the app."]
    assert [b.label for b in at.button] == ["Sign in"] and not at.get("file_uploader") and not at.title
    at = signed_in(None, "pages/models.py")
    assert [b.label for b in at.button] == ["Sign in"] and not at.dataframe
    at = signed_in(None, configured=False)  # no [auth] in the secrets: said so, no button that would fail
    assert not at.button and any("not set up on this server" in i.value for i in at.info)


def test_the_sidebar_names_the_user(signed_in):
    assert "Signed in as alice@school" in sidebar_text(signed_in("alice@school"))
    assert "Signed in as teacher@school (admin)" in sidebar_text(signed_in("teacher@school"))


def test_someone_elses_job_has_no_cancel_button(signed_in, db_url):
    job = job_rows.create(db_url, "benchmark", "alice's benchmark", {}, "cpu", owner="alice@school")
    with session_scope(db_url) as s:  # running, with a fresh heartbeat and no process: no worker is started
        s.execute(update(JobRow).where(JobRow.id == job).values(status="running", heartbeat_at=utcnow()))
    bob = signed_in("bob@school", "pages/benchmark.py")
    assert any("on cpu · by alice@school" in shown(m.value) for m in bob.markdown)
    assert not [b for b in bob.button if b.key and b.key.endswith(f"_cancel_{job}")]
    assert not [e for e in bob.expander if e.label.startswith("Logs")]  # a worker's log is its owner's to read
    alice = signed_in("alice@school", "pages/benchmark.py")
    assert [e.label for e in alice.expander if e.label.startswith("Logs")] == ["Logs of your jobs"]
    [cancel] = [b for b in alice.button if b.key and b.key.endswith(f"_cancel_{job}")]
    cancel.click().run()
    assert job_rows.get(db_url, job).status == "cancelled"


def test_only_the_owner_gets_the_delete_button_of_a_run(signed_in, db_url):
    rec = make_record()
    rec.owner = "alice@school"
    run = repository.record_run(db_url, rec)
    bob = signed_in("bob@school", "pages/results.py")
    assert "Run by alice@school." in " ".join(shown(c.value) for c in bob.caption)
    assert "res_delete" not in [b.key for b in bob.button]
    alice = signed_in("alice@school", "pages/results.py")
    alice.button(key="res_delete").click().run()
    alice.button(key="res_delete_yes").click().run()
    assert not alice.exception and not alice.error
    assert repository.run_detail(db_url, run) is None


def test_datasets_are_managed_by_their_owner(signed_in):
    archive = make_zip({"cats/a.png": png(10), "dogs/b.png": png(200)})
    mine = services.upload_dataset(archive, "alice pets.zip", user=User("alice@school"))
    bob = signed_in("bob@school", "pages/benchmark.py")
    assert [c.value for c in bob.caption if c.value.startswith("You have no dataset")] != []
    assert "Jobs queued or running: 0 of 4." in " ".join(shown(c.value) for c in bob.caption)
    alice = signed_in("alice@school", "pages/benchmark.py")
    assert alice.selectbox(key="bm_own_pick").options == [f"{mine.label}, 0.0 MB"]
    alice.button(key="bm_own_delete").click().run()
    alice.button(key="bm_own_yes").click().run()
    assert not alice.exception and not alice.error and services.uploaded() == []
    assert any("Deleted" in s.value for s in alice.success)


def test_only_admins_see_the_weights_file_form(signed_in):
    student = signed_in("alice@school", "pages/models.py")
    assert "wpath_set" not in [b.key for b in student.button]
    assert any("only an admin can point them at another weights file" in c.value for c in student.caption)
    teacher = signed_in("teacher@school", "pages/models.py")
    assert "wpath_set" in [b.key for b in teacher.button]
