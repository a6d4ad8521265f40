"""A class voting in the arena at once: N simulated voters for M minutes against one results store, each doing what
the Arena page does for a person: render the vote view (list rounds, fetch the next pair), think, vote, and poll the
standings every few seconds (the live fragment). Voters pick by a hidden taste: Bradley-Terry strengths per model
so the standings at the end can be checked against the strengths they were drawn from.

    python -m bench.arena_voters [--voters 30] [--minutes 2] [--think 1.5] [--poll 3] [--models 6] [--images 6]
                                 [--browsers N]

Prints votes accepted and stored (they must agree), errors (must be 0), a double vote per voter that must be
refused, p50/p95 latency of each call, and the final ratings beside the simulated strengths. Voters are threads in
one process calling core.services, as the Streamlit server's session threads do; the store is a fresh SQLite file
(the embedded default) unless DATABASE_URL is set.

--browsers N adds N people in real headless Chromium sessions (Debian's /usr/bin/chromium) against a
`streamlit run app.py` on the same store, each signed in under its own name (proxy mode, the name in the
X-Remote-User header from 127.0.0.1, as behind nginx) and clicking through the Vote view; their votes are random
(they cannot see the names). Reported: their votes, click-to-next-pair latency, and any error on their pages.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import urllib.request
import random
import statistics
import tempfile
import threading
import time
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voters", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--think", type=float, default=1.5, help="mean seconds between a pair appearing and the vote")
    parser.add_argument("--poll", type=float, default=3.0, help="seconds between standings refreshes")
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--side", type=int, default=128, help="working size of the round's images")
    parser.add_argument("--browsers", type=int, default=0, help="people voting in real Chromium sessions as well")
    args = parser.parse_args()
    os.environ.setdefault("IMGLAB_DATA_DIR", tempfile.mkdtemp(prefix="arena-bench-"))
    os.environ.setdefault("IMGLAB_OFFLINE", "1")

    from core import services
    from core.data.builtin import builtin_image, sample_order
    from core.engine import Engine
    from core.metrics.preference import win_probability
    from core.services import arena
    from core.users import User

    teacher = User("teacher", admin=True)
    models = [i.name for i in services.list_model_infos("restoration", "denoise") if i.weights_status != "missing"]
    models = models[:args.models]
    photos = [builtin_image(n) for n in sample_order()[:args.images]]
    t0 = time.perf_counter()
    round_id = arena.open_round(Engine("cpu"), title="bench", kind="denoise", images=photos, models=models,
                                settings=arena.Settings(max_side=args.side), user=teacher)
    opened_s = time.perf_counter() - t0
    found = arena.get_round(round_id)
    taste = {m: 1000.0 + 300.0 * (k / max(len(models) - 1, 1) - 0.5) for k, m in enumerate(sorted(models))}
    print(f"round #{round_id}: {len(models)} models x {len(photos)} images at {args.side} px, "
          f"{arena.pair_total(found)} pairs per voter; opened in {opened_s:.1f} s")

    latency: dict[str, list[float]] = defaultdict(list)
    counters: dict[str, int] = defaultdict(int)
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.minutes * 60

    def timed(name: str, fn, *a, **k):
        start = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            with lock:
                latency[name].append((time.perf_counter() - start) * 1000)

    def voter(n: int) -> None:
        user = User(f"student{n:02d}")
        rng = random.Random(n)
        last_poll = 0.0
        tried_double = False
        while time.monotonic() < stop_at:
            try:
                match = timed("vote view (rounds, next pair)",
                              lambda: (arena.rounds(), arena.next_matchup(round_id, user, rng))[1])
                time.sleep(rng.expovariate(1 / args.think))
                if match is not None:
                    p = win_probability(taste[match.left], taste[match.right])
                    choice = "left" if rng.random() < p else "right"
                    timed("vote", arena.vote, round_id, match.image_index, match.left, match.right, choice, user)
                    with lock:
                        counters["accepted"] += 1
                    if not tried_double:  # the same pair again, the other way round: must be refused
                        tried_double = True
                        try:
                            arena.vote(round_id, match.image_index, match.right, match.left, "tie", user)
                            with lock:
                                errors.append(f"{user.name}: a second vote on one pair was stored")
                        except Exception as exc:  # noqa: BLE001
                            with lock:
                                counters["double votes refused" if "already voted" in str(exc) else "bad refusal"] += 1
                else:
                    with lock:
                        counters["voters done"] += 1 if not counters.get(f"done{n}") else 0
                        counters[f"done{n}"] = 1
                if time.monotonic() - last_poll >= args.poll:
                    last_poll = time.monotonic()
                    timed("standings poll", arena.standings, round_id)
            except Exception as exc:  # noqa: BLE001 - every error is counted and reported
                with lock:
                    errors.append(f"{user.name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=voter, args=(n,), daemon=True) for n in range(args.voters)]
    browsing: dict = {"votes": 0, "latency": [], "errors": []}
    server = _start_server(os.environ["IMGLAB_DATA_DIR"]) if args.browsers else None
    if server is not None:
        threads.append(threading.Thread(target=lambda: asyncio.run(
            _browse(server[1], round_id, args.browsers, stop_at, args.think, browsing)), daemon=True))
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if server is not None:
        server[0].terminate()
        server[0].wait(20)

    board = arena.standings(round_id, fresh_s=0)
    voters_of = arena.votes_table(round_id, teacher)["voter"]
    stored = int(voters_of.str.startswith("student").sum())
    print(f"\n{args.voters} voters for {wall:.0f} s: {counters['accepted']} votes accepted, {stored} stored "
          f"({stored / wall:.1f} votes/s), {counters['double votes refused']} double votes refused of "
          f"{args.voters} tried, {counters['voters done']} voters voted on every pair, errors: {len(errors)}")
    for e in errors[:10]:
        print("  error:", e)
    if args.browsers:
        in_store = int(voters_of.str.startswith("browser").sum())
        lat = browsing["latency"] or [float("nan")]
        q = statistics.quantiles(lat, n=20) if len(lat) > 1 else lat * 19
        print(f"{args.browsers} Chromium voters: {browsing['votes']} votes, {in_store} stored under their names; "
              f"click to next pair p50 {statistics.median(lat):.2f} s, p95 {q[18]:.2f} s; clicks repeated after 10 s "
              f"without an answer: {browsing.get('lost_clicks', 0)}; errors on their pages: {len(browsing['errors'])}")
        for e in browsing["errors"][:10]:
            print("  browser error:", e)
        errors += browsing["errors"]
        if in_store != browsing["votes"]:
            errors.append(f"browsers clicked {browsing['votes']} votes, the store has {in_store}")
    print("\nlatency (ms)          calls    p50     p95     max")
    for name, values in latency.items():
        q = statistics.quantiles(values, n=20) if len(values) > 1 else values * 19
        print(f"  {name:38s} {len(values):6d} {statistics.median(values):7.1f} {q[18]:7.1f} {max(values):7.1f}")
    print("\nmodel                         simulated  rating  95% interval")
    titles = {found.titles.get(m, m): m for m in found.models}
    mean_taste = statistics.mean(taste.values())
    covered = 0
    for _, row in board.table.iterrows():
        truth = taste[titles[row["model"]]] - mean_taste + 1000
        inside = row["low"] <= truth <= row["high"]
        covered += inside
        print(f"  {row['model']:28s} {truth:9.0f} {row['rating']:7.0f}  {row['low']:.0f}-{row['high']:.0f}"
              f"{'' if inside else '  (outside)'}")
    print(f"({covered}/{len(board.table)} 95% intervals hold the simulated strength)")
    ok = not errors and stored == counters["accepted"] and counters["double votes refused"] == args.voters
    print("\nRESULT:", "ok" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


def _start_server(data_dir: str) -> tuple[subprocess.Popen, str]:
    """The app on a free port over the same store, in proxy mode trusting 127.0.0.1 (where the browsers are)."""
    from bench.load_sessions import _free_port

    port = _free_port()
    env = {**os.environ, "IMGLAB_DATA_DIR": data_dir, "IMGLAB_DEVICE": "cpu", "IMGLAB_AUTH": "proxy",
           "IMGLAB_TRUSTED_PROXIES": "127.0.0.1/32", "FORWARDED_ALLOW_IPS": ""}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1"], env=env,
                            stdout=open(os.path.join(data_dir, "server.log"), "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError("the app did not start")


async def _browse(url: str, round_id: int, n: int, stop_at: float, think: float, out: dict) -> None:
    from playwright.async_api import async_playwright

    from bench.load_sessions import ARGS, CHROMIUM

    async def person(browser, i: int) -> None:
        rng = random.Random(1000 + i)
        context = await browser.new_context(viewport={"width": 1400, "height": 1000},
                                            extra_http_headers={"X-Remote-User": f"browser{i:02d}"})
        page = await context.new_page()
        page.set_default_timeout(120_000)
        try:
            await page.goto(f"{url}/arena?view=vote&round={round_id}")
            remaining = page.get_by_text(re.compile(r"pairs? left for you$")).first
            while time.monotonic() < stop_at:
                await remaining.wait_for()
                before = int(re.search(r"(\d+) pairs? left", await remaining.inner_text()).group(1))
                await page.wait_for_timeout(rng.expovariate(1 / think) * 1000)
                await page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
                label = rng.choice(["A is better", "B is better", "About the same"])
                start = time.perf_counter()
                await page.get_by_role("button", name=label).last.click()
                # the vote is in when the count of pairs left drops (or none are left); a click that reached the
                # server while it was busy can be lost: after 10 s without a change, click once more
                clicked_again, now = False, before
                while True:
                    await page.wait_for_timeout(200)
                    if await page.get_by_text(re.compile("You have voted on every pair")).count():
                        now = 0
                        break
                    if await remaining.count():
                        now = int(re.search(r"(\d+) pairs? left", await remaining.inner_text()).group(1))
                        if now < before:
                            break
                    if time.perf_counter() - start > 10 and not clicked_again:
                        clicked_again = True
                        out["lost_clicks"] = out.get("lost_clicks", 0) + 1
                        await page.get_by_role("button", name=label).last.click()
                    if time.perf_counter() - start > 90:
                        raise TimeoutError("the vote did not register in 90 s")
                out["latency"].append(time.perf_counter() - start)
                if os.environ.get("ARENA_BENCH_DEBUG"):
                    print(f"browser{i:02d}: {before} -> {now}", flush=True)
                out["votes"] += before - now
                text = await page.locator("body").inner_text()
                if "Traceback" in text or "Something went wrong" in text or "already voted" in text:
                    out["errors"].append(f"browser{i:02d}: {text[-200:]!r}")
                if "You have voted on every pair" in text:
                    break
        except Exception as exc:  # noqa: BLE001 - reported with the others
            out["errors"].append(f"browser{i:02d}: {type(exc).__name__}: {str(exc)[:160]}")
        finally:
            await context.close()

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        await asyncio.gather(*(person(browser, i) for i in range(n)))
        await browser.close()


if __name__ == "__main__":
    main()
