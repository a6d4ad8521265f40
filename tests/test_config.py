"""The shipped Streamlit config keeps the protections on (DESIGN.md hostile input 25)."""
import tomllib
from pathlib import Path

from core.config import get_settings

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_streamlit_config_is_locked_down():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["enableXsrfProtection"] is True
    assert cfg["server"]["enableCORS"] is True
    assert cfg["server"]["allowedHosts"] == ["localhost", "127.0.0.1"]
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["browser"]["gatherUsageStats"] is False


def test_settings_defaults_and_overrides(settings_env, tmp_path):
    s = get_settings()
    assert s.data_dir == tmp_path and s.database_url.startswith("sqlite:///")
    assert s.weights_dir == tmp_path / "weights" and s.max_pixels == 40_000_000
    settings_env(IMGLAB_MAX_PIXELS=1000, IMGLAB_DEVICE="cpu")
    assert get_settings().max_pixels == 1000 and get_settings().device == "cpu"


# -- every environment read in core/ goes through core.config.Settings ------------------------------------------
# The only other uses of os.environ in core/: a whole-environment copy handed to a worker process (local: the
# spawned worker's env; Ray: the IMGLAB_* variables sent along, and applied inside the Ray task).
ENV_COPIES = {
    "core/jobs/runner.py": {"dict(os.environ)"},
    "core/jobs/ray_backend.py": {"os.environ.items()", "os.environ.update(...)"},
}


def environment_uses(source: str) -> list[tuple[int, str]]:
    """(line, form) of every use of the process environment in `source`: os.environ / os.getenv / os.putenv /
    os.environb (through any name os is imported as) and `from os import ...` of them. A whole-environment copy
    is named "dict(os.environ)", "os.environ.items()" or "os.environ.update(...)"; anything else (.get, [...],
    `in`, getenv(...), an alias) by its own source text."""
    import ast

    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    os_names = {alias.asname or "os" for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names if alias.name == "os"}
    names = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(a.name in names for a in node.names):
            out.append((node.lineno, ast.unparse(node)))
        if not (isinstance(node, ast.Attribute) and node.attr in names and isinstance(node.value, ast.Name)
                and node.value.id in os_names):
            continue
        parent = parents.get(node)
        grand = parents.get(parent)
        if node.attr == "environ" and isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) \
                and parent.func.id == "dict" and parent.args == [node] and not parent.keywords:
            out.append((node.lineno, "dict(os.environ)"))
        elif node.attr == "environ" and isinstance(parent, ast.Attribute) and parent.attr in ("items", "update") \
                and isinstance(grand, ast.Call) and grand.func is parent:
            out.append((node.lineno, "os.environ.items()" if parent.attr == "items" and not grand.args
                        else f"os.environ.{parent.attr}(...)"))
        else:
            context = grand if isinstance(parent, ast.Attribute) and isinstance(grand, ast.Call) else parent
            out.append((node.lineno, ast.unparse(context if context is not None else node)))
    return sorted(out, key=lambda use: use[0])


def test_the_app_reads_the_environment_only_through_settings():
    """core/config.py is the one module of core/, db/, ui/ and pages/ that reads os.environ; the whole-environment
    copies for workers are the only other uses. (db/ is handed its store knobs: db.session.use_tuning.)"""
    bad = []
    for path in sorted(p for d in ("core", "db", "ui", "pages") for p in (ROOT / d).rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "core/config.py":
            continue
        for line, form in environment_uses(path.read_text()):
            if form not in ENV_COPIES.get(rel, set()):
                bad.append(f"{rel}:{line}: {form}")
    assert not bad, "read these through core.config.get_settings() instead:\n" + "\n".join(bad)


def test_the_environment_scan_sees_every_kind_of_read():
    reads = """
import os
import os as system
from os import environ, getenv
a = os.environ.get("A")
b = os.environ["B"]
c = "C" in os.environ
d = os.getenv("D")
e = system.environ.get("E", "")
f = os.environ
g = os.environ.copy()
h = dict(os.environ, X="1")
"""
    found = [form for _, form in environment_uses(reads)]
    assert found == ["from os import environ, getenv", "os.environ.get('A')", "os.environ['B']",
                     "'C' in os.environ", "os.getenv('D')", "system.environ.get('E', '')", "f = os.environ",
                     "os.environ.copy()", "dict(os.environ, X='1')"]
    copies = "import os\nenv = dict(os.environ)\nos.environ.update(env)\nx = {k: v for k, v in os.environ.items()}\n"
    assert [form for _, form in environment_uses(copies)] == ["dict(os.environ)", "os.environ.update(...)",
                                                               "os.environ.items()"]
    assert [f for _, f in environment_uses("import os\nd = os.path.join('a')\npid = os.getpid()\n")] == []


def test_job_settings_parse_and_check_as_before(settings_env):
    import pytest

    from core.errors import InvalidInput
    from core.jobs import runner
    from db.session import retry_budget_s

    s = get_settings()
    assert (s.job_backend, s.heartbeat_window_s, s.finish_patience_s) == ("local", 15.0, 600.0)
    assert runner.backend() == "local"
    settings_env(IMGLAB_JOB_BACKEND=" Ray ", IMGLAB_HEARTBEAT_WINDOW_S="90", IMGLAB_FINISH_PATIENCE_S="5")
    assert runner.backend() == "ray" and get_settings().finish_patience_s == 5.0
    assert runner.heartbeat_window_s() == 90.0 == get_settings().heartbeat_window_s
    settings_env(IMGLAB_JOB_BACKEND="local", IMGLAB_HEARTBEAT_WINDOW_S="")  # empty: the default
    assert get_settings().heartbeat_window_s == 15.0
    assert runner.heartbeat_window_s() == max(15.0, retry_budget_s() + 2 * runner.HEARTBEAT_S + 1.0)  # raised
    settings_env(IMGLAB_JOB_BACKEND="celery")  # the app still starts; a job is refused with the reason
    assert get_settings().job_backend == "celery"
    with pytest.raises(InvalidInput, match="IMGLAB_JOB_BACKEND must be local or ray, got 'celery'"):
        runner.backend()
    settings_env(IMGLAB_JOB_BACKEND="local", IMGLAB_HEARTBEAT_WINDOW_S="soon")
    with pytest.raises(ValueError, match="soon"):
        get_settings()


def test_model_and_ray_settings(settings_env, tmp_path):
    import os

    from core.config import REPO_ROOT

    for name in ("IMGLAB_REFERENCE_DIR", "IMGLAB_WEIGHT_ROOTS", "IMGLAB_FAULT_OOM_ABOVE_BATCH", "RAY_ADDRESS",
                 "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        settings_env(**{name: ""})  # set and empty: as unset
    s = get_settings()
    assert s.reference_dir == REPO_ROOT / "reference_weights" and s.weight_roots == ()
    assert (s.fault_oom_above_batch, s.ray_address, s.ray_auth_mode, s.ray_auth_token_set,
            s.ray_auth_token_path) == (None, None, "", False, None)
    settings_env(IMGLAB_REFERENCE_DIR=tmp_path / "ref", IMGLAB_WEIGHT_ROOTS=f"{tmp_path / 'a'}{os.pathsep}{tmp_path}",
                 IMGLAB_FAULT_OOM_ABOVE_BATCH="0", RAY_ADDRESS="ray://head:10001", RAY_AUTH_MODE="Token",
                 RAY_AUTH_TOKEN="secret", RAY_AUTH_TOKEN_PATH=tmp_path / "token")
    s = get_settings()
    assert s.reference_dir == tmp_path / "ref" and s.weight_roots == (tmp_path / "a", tmp_path)
    assert (s.fault_oom_above_batch, s.ray_address, s.ray_auth_mode, s.ray_auth_token_set,
            s.ray_auth_token_path) == (0, "ray://head:10001", "token", True, tmp_path / "token")
    assert "secret" not in repr(s)  # only whether a token is set is kept


def test_the_stores_lock_waits_come_from_settings(settings_env):
    import pytest

    import core.store  # noqa: F401  (installs the settings as db's tuning)
    from db import session

    assert (session.busy_timeout_ms(), session.retry_delay_s()) == (10_000, 0.2)
    settings_env(IMGLAB_BUSY_TIMEOUT_MS="250", IMGLAB_STORE_RETRY_DELAY_S="0.05")
    assert (session.busy_timeout_ms(), session.retry_delay_s()) == (250, 0.05)
    assert session.retry_budget_s() == pytest.approx(5 * 0.25 + 0.05 * 15)
    settings_env(IMGLAB_BUSY_TIMEOUT_MS="-1")
    with pytest.raises(ValueError, match="IMGLAB_BUSY_TIMEOUT_MS must not be negative"):
        session.busy_timeout_ms()
