import io
import os
import tempfile

import numpy as np
import pytest

# Tests never touch the repository's data/ folder nor the network hub.
_SESSION_DIR = tempfile.mkdtemp(prefix="imglab-tests-")
os.environ["IMGLAB_DATA_DIR"] = _SESSION_DIR
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("IMGLAB_OFFLINE", "1")
os.environ.setdefault("IMGLAB_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def fresh_settings():
    """core.config.get_settings() is cached: every test starts and ends with it read afresh from the environment,
    so a variable a test set (monkeypatch restores it after the test) never outlives that test. A test that sets
    one after settings were read calls get_settings.cache_clear() itself (or uses settings_env)."""
    from core.config import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """A fresh data dir and SQLite store for one test; returns a function to set more env vars."""
    from core.config import get_settings

    monkeypatch.setenv("IMGLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'results.db'}")
    get_settings.cache_clear()

    def set_env(**values):
        for key, value in values.items():
            monkeypatch.setenv(key, str(value))
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


@pytest.fixture
def db_url(settings_env, tmp_path):
    from db import migrate

    url = f"sqlite:///{tmp_path / 'results.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_admin():
    """One throwaway PostgreSQL cluster for the whole run (tests/pg_support.py); its admin URL."""
    from tests.pg_support import cluster

    with cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, settings_env, tmp_path):
    """The results store under test, on each backend the product supports: SQLite (the embedded default) and
    PostgreSQL (a shared deployment), migrated to head and set as DATABASE_URL for the code and its workers."""
    from db import migrate

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'results.db'}"
        migrate.upgrade(url)
        yield url
        return
    from tests.pg_support import fresh_database

    with fresh_database(request.getfixturevalue("postgres_admin")) as url:
        settings_env(DATABASE_URL=url)
        migrate.upgrade(url)
        yield url


def encode(pixels: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **kwargs)
    return buf.getvalue()


def shapes_imagefolder(count: int) -> bytes:
    """An ImageFolder zip of `count` 32 px one-shape scenes in two classes: round (circles) and angular."""
    import zipfile

    from core.data.synthetic import scene

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(count):
            s = scene(9000 + i, size=32, max_shapes=1)
            zf.writestr(f"{'round' if s.labels[0] == 1 else 'angular'}/{i}.png", encode(s.image))
    return buf.getvalue()


class PickleExploit:
    """Unpickling this runs `touch marker`: a checkpoint loader that executes it is unsafe."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def no_reference_weights(monkeypatch, tmp_path):
    """The small nets as a fresh architecture with nothing to load: the shipped reference weights hidden."""
    from core.config import get_settings
    from core.models.reference import DIR_ENV

    empty = tmp_path / "no-reference-weights"
    empty.mkdir()
    monkeypatch.setenv(DIR_ENV, str(empty))
    get_settings.cache_clear()
    return empty


def shown(markdown: str) -> str:
    """The text a Markdown value from AppTest displays: ui.text.plain's escapes and joiners removed."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown.replace("\u2060", ""))
