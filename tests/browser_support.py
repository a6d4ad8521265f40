"""Shared pieces of the browser tests: a `streamlit run app.py` server on a free port, Debian's headless
Chromium driven by Playwright, and a page opened on the app. Import the fixtures into a test module."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]  # a test pattern as the camera

if not Path(CHROMIUM).exists():
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise RuntimeError("REQUIRE_BROWSER=1 but /usr/bin/chromium is missing (apt-get install -y chromium)")
    pytest.skip("Debian chromium is not installed; `make test` installs it when run as root",
                allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(data_dir: Path, extra_env: dict | None = None):
    """`streamlit run app.py` on a free port with its own data folder; yields the base URL."""
    port = free_port()
    env = {**os.environ, "IMGLAB_DATA_DIR": str(data_dir), "IMGLAB_DEVICE": "cpu", **(extra_env or {})}
    env.pop("DATABASE_URL", None)
    log = open(data_dir / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not start: " + (data_dir / "server.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("browser-data")
    with streamlit_server(data_dir) as url:
        yield url, data_dir


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def settle(page) -> None:
    """Let the rerun a widget change triggered finish; a click during it can be swallowed."""
    page.wait_for_timeout(1000)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")


def click_until(page, button, shown, attempts: int = 3, wait_ms: int = 20_000) -> None:
    """Click an idempotent `button` until `shown` appears. A click that lands while a polling fragment reruns
    can be dropped by Streamlit (seen once on CI under load); a user would click again, and so does this."""
    for attempt in range(attempts):
        settle(page)
        button.click()
        try:
            shown.wait_for(timeout=wait_ms)
            return
        except sync_api.TimeoutError:
            if attempt == attempts - 1:
                raise


@pytest.fixture
def page(browser, server, request):
    url, data_dir = server
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.set_default_timeout(120_000)
    pg.goto(url)
    pg.get_by_role("heading", name="Playground").wait_for()
    yield pg
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    pg.screenshot(path=str(artifacts / f"{request.node.name}.png"), full_page=True)
    pg.close()


def choose(page, label: str, option: str, search: str | None = None) -> None:
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(search or option.split(" ")[0])
    page.get_by_role("option", name=option).first.click()
    page.keyboard.press("Escape")
    settle(page)


def seed_store(data_dir: Path) -> None:
    """Two classical denoisers benchmarked on two small photos, through the CLI, into the server's store."""
    env = {**os.environ, "IMGLAB_DATA_DIR": str(data_dir), "IMGLAB_DEVICE": "cpu"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "core", "bench", "--model", "gaussian_denoise", "--model", "median_denoise",
                    "--dataset", "photos-denoise", "--set", "limit=2", "--set", "max_side=64", "--json"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
