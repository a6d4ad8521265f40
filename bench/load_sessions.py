"""Many people on one server at once: N real browser sessions (headless Chromium through Playwright), each
uploading its own photo and running classification (EfficientNet-Lite0) and denoising (every method with
weights, at a 256 px working size) in a loop, against one `streamlit run app.py`.

    python -m bench.load_sessions --sessions 10 --minutes 2 [--max-concurrent-runs 2 --compare-uncapped]

Prints sessions, completed requests, p50/p95 latency from click to answer (per kind), errors, model builds
(from the server's log, IMGLAB_LOG_LEVEL=INFO) and the server's peak memory (RSS of its process tree, sampled
every 0.5 s). Each session uploads a photo under its own file name and checks that no other session's file
name ever appears on its page. Needs Debian's chromium (/usr/bin/chromium), as the browser tests do.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _photo(seed: int) -> bytes:
    """The scikit-image cat, cropped differently per session (so each upload is its own image), as JPEG."""
    from PIL import Image

    from core.data.builtin import load_builtin

    cat = load_builtin("chelsea")
    dx, dy = seed % 40, (seed * 7) % 30
    buf = io.BytesIO()
    Image.fromarray(cat[dy:dy + 260, dx:dx + 380]).save(buf, "JPEG", quality=90)
    return buf.getvalue()


class MemoryWatch(threading.Thread):
    """Peak RSS of a process and its children."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.5)


async def _stored_run(page) -> int:
    """The newest run number the page's 'Stored as run #N' / 'Stored as runs #A to #B' caption names (0: none)."""
    caption = page.get_by_text("Stored as run", exact=False)
    if not await caption.count():
        return 0
    text = await caption.first.inner_text()
    return max(int(m) for m in re.findall(r"#(\d+)", text))


async def _new_run(page, before: int, click, out: dict) -> None:
    """The caption names a run newer than `before` (the page shows the previous answer until then). A click
    that reached the server while it was busy with the session's previous rerun can be lost: when the page has
    been idle for 10 s with no new run, click once more (counted as a lost click, as a user would)."""
    idle, again = 0.0, True
    for _ in range(3000):
        if await _stored_run(page) > before:
            return
        running = await page.get_by_test_id("stStatusWidget").is_visible()
        idle = 0.0 if running else idle + 0.2
        if idle >= 10 and again:
            out["lost_clicks"] += 1
            again = False
            await click()
        await page.wait_for_timeout(200)
    raise TimeoutError("no new run stored")


async def _session(browser, url: str, index: int, photo: Path, names: list[str], until: float, out: dict) -> None:
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)

    async def settled() -> None:
        await page.wait_for_timeout(300)
        await page.get_by_test_id("stStatusWidget").wait_for(state="hidden")

    async def timed(kind: str, click, done) -> None:
        """Click, then wait for the rerun the click started to finish (Streamlit's running indicator shows and
        hides; a rerun under 0.25 s may finish before it shows) and for the answer to be on the page."""
        await settled()  # a click during a rerun can be swallowed
        start = time.perf_counter()
        try:
            await click()
            await page.wait_for_timeout(250)
            await page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
            await done()
            out["latency"].setdefault(kind, []).append(time.perf_counter() - start)
        except Exception as exc:  # a timeout or a closed page: counted with what the page said, the loop goes on
            alerts = page.get_by_test_id("stAlert")
            said = (await alerts.first.inner_text())[:100] if await alerts.count() else "no message on the page"
            out["errors"].append(f"session {index} {kind}: {type(exc).__name__} ({said!r})")
            if os.environ.get("LOAD_SHOTS"):
                await page.screenshot(path=f"{os.environ['LOAD_SHOTS']}/s{index}-{kind}-{len(out['errors'])}.png", full_page=True)

    try:
        await page.goto(url)
        await page.get_by_role("heading", name="Playground").wait_for()
        while time.monotonic() < until:
            # the uploader is cleared when the task switches (Streamlit drops the state of widgets not drawn)
            await page.locator('input[type="file"]').first.set_input_files(str(photo))
            await page.get_by_text(photo.name).first.wait_for()
            await settled()  # the upload's own rerun
            before = await _stored_run(page)
            classify = lambda: page.get_by_role("button", name="Classify").click()  # noqa: E731
            await timed("classify", classify, lambda before=before, classify=classify: _new_run(page, before, classify, out))
            text = await page.locator("body").inner_text()
            others = [n for n in names if n != photo.name and n in text]
            if others:
                out["leaks"].append(f"session {index} saw {others}")
            if "Something went wrong" in text or "Traceback" in text:
                out["errors"].append(f"session {index}: error on page")
            await page.get_by_text("Denoise", exact=True).click()
            await page.get_by_text("Noise σ (0-255 scale)").wait_for()
            await page.wait_for_timeout(800)
            size = page.locator('input[type="range"][aria-label="Working size (long side, px)"]')
            if await size.count() and await size.first.input_value() != "256":  # 64 (Home) + 6 steps of 32
                await size.first.focus()
                await page.keyboard.press("Home")
                for _ in range(6):
                    await page.keyboard.press("ArrowRight")
                await page.wait_for_timeout(800)
            before = await _stored_run(page)
            restore = lambda: page.get_by_role("button", name="Restore").click()  # noqa: E731
            await timed("denoise", restore, lambda before=before, restore=restore: _new_run(page, before, restore, out))
            await page.get_by_text("Classification", exact=True).click()
            await page.get_by_role("button", name="Classify").wait_for()
            await page.wait_for_timeout(800)
    except Exception as exc:
        out["errors"].append(f"session {index} stopped: {type(exc).__name__}: {str(exc)[:120]}")
    finally:
        await page.close()


async def _drive(url: str, n: int, minutes: float, workdir: Path) -> dict:
    from playwright.async_api import async_playwright

    names = [f"session-{i:02d}-photo.jpg" for i in range(n)]
    photos = []
    for i, name in enumerate(names):
        path = workdir / name
        path.write_bytes(_photo(i))
        photos.append(path)
    out: dict = {"latency": {}, "errors": [], "leaks": [], "lost_clicks": 0}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        until = time.monotonic() + minutes * 60
        grace = minutes * 60 + 240  # a session still waiting then is stopped and counted as an error

        async def bounded(i: int) -> None:
            try:
                await asyncio.wait_for(_session(browser, url, i, photos[i], names, until, out), grace)
            except TimeoutError:
                out["errors"].append(f"session {i}: still waiting {grace:.0f} s after the start; stopped")

        await asyncio.gather(*(bounded(i) for i in range(n)))
        await browser.close()
    return out


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else float("nan"))


def _load(sessions: int, minutes: float, cap: int | None) -> dict:
    """One server, `sessions` browsers for `minutes`; `cap`: IMGLAB_MAX_CONCURRENT_RUNS (None: the default)."""
    workdir = Path(tempfile.mkdtemp(prefix="imglab-load-"))
    port = _free_port()
    env = {**os.environ, "IMGLAB_DATA_DIR": str(workdir / "data"), "IMGLAB_DEVICE": "cpu", "IMGLAB_LOG_LEVEL": "INFO"}
    env.pop("DATABASE_URL", None)
    if cap is not None:
        env["IMGLAB_MAX_CONCURRENT_RUNS"] = str(cap)
    log_path = workdir / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                                   "--server.port", str(port), "--server.address", "127.0.0.1"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(180):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        watch = MemoryWatch(server.pid)
        watch.start()
        started = time.perf_counter()
        out = asyncio.run(_drive(url, sessions, minutes, workdir))
        out["wall"] = time.perf_counter() - started
        watch.stop.set()
    finally:
        server.terminate()
        server.wait(30)
    out["builds"] = sum("model built:" in line for line in log_path.read_text().splitlines())
    out["done"] = sum(len(v) for v in out["latency"].values())
    out["peak"] = watch.peak
    return out


def _report(title: str, sessions: int, out: dict) -> None:
    wall, done = out["wall"], out["done"]
    print(f"{title}: sessions {sessions}, {wall:.0f} s, 2 cores, CPU only")
    print(f"requests completed: {done} ({done / wall * 60:.1f} per minute), errors: {len(out['errors'])}, "
          f"cross-session leaks: {len(out['leaks'])}, clicks lost and repeated: {out['lost_clicks']}")
    for kind, values in sorted(out["latency"].items()):
        print(f"  {kind:9s} n={len(values):4d}  p50 {_pct(values, 50):6.2f} s  p95 {_pct(values, 95):6.2f} s")
    print(f"model builds: {out['builds']}; server peak RSS (process tree): {out['peak'] / 2**20:.0f} MiB")
    for line in (out["errors"] + out["leaks"])[:10]:
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--max-concurrent-runs", type=int, default=None,
                        help="IMGLAB_MAX_CONCURRENT_RUNS for the server (default: the app's default)")
    parser.add_argument("--compare-uncapped", action="store_true",
                        help="also run the same load with (practically) no cap and print the ratios")
    args = parser.parse_args()

    capped = _load(args.sessions, args.minutes, args.max_concurrent_runs)
    _report(f"cap {args.max_concurrent_runs or 'default'}", args.sessions, capped)
    if args.compare_uncapped:
        free = _load(args.sessions, args.minutes, 10_000)
        _report("no cap", args.sessions, free)
        rate = lambda o: o["done"] / o["wall"]  # noqa: E731
        print(f"capped / uncapped: peak RSS {capped['peak'] / free['peak']:.2f}, "
              f"requests per minute {rate(capped) / rate(free):.2f}")


if __name__ == "__main__":
    main()
