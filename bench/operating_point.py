"""How fast the detection operating-point explorer answers a slider move, on a 500-image run.

    python -m bench.operating_point [--images 500] [--model fasterrcnn_tiny_shapes]

Benchmarks the model over that many synthetic shapes scenes (stored like the app's runs, matches included, in a
throwaway store), then times, in one run:
- the first answer (the match table read from the store and decoded),
- 30 slider moves through core.services.operating_point.explore (random IoU step and score),
- 5 slider moves through the Compare page itself (Streamlit AppTest: the whole script reruns, charts included),
and prints each against the 300 ms budget, with the fresh evaluation it replaces for scale. A stress line repeats
the arithmetic on 500 images with 100 detections each (a detector that keeps every low score), built synthetically.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

BUDGET_MS = 300.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--model", default="fasterrcnn_tiny_shapes")
    args = ap.parse_args()
    os.environ["IMGLAB_DATA_DIR"] = tempfile.mkdtemp(prefix="imglab-bench-")
    os.environ.setdefault("IMGLAB_DEVICE", "cpu")

    from streamlit.testing.v1 import AppTest

    from core.engine import Engine
    from core.metrics import operating_points
    from core.services import operating_point
    from core.services.benchmark import run_benchmark
    from core.store import ensure_store
    from db import repository

    t = time.perf_counter()
    [outcome] = run_benchmark(Engine("cpu"), [args.model], {"name": "shapes-detect", "count": args.images},
                              {"score_threshold": 0.5})
    bench_s = time.perf_counter() - t
    if outcome.error:
        raise SystemExit(f"the benchmark failed: {outcome.error}")
    run_id = outcome.run_id
    blob = repository.run_artifact(ensure_store(), run_id, operating_points.ARTIFACT)
    assert blob is not None
    table = operating_points.MatchTable.from_bytes(blob)
    print(f"{args.model} over {args.images} scenes: {bench_s:.1f} s (the fresh evaluation a slider move replaces); "
          f"{len(table.det_score)} detections, {len(table.gt_class)} objects, match table {len(blob) / 1024:.0f} KiB")

    t = time.perf_counter()
    operating_point.explore(run_id, 0.5, 0.5)
    first_ms = 1000 * (time.perf_counter() - t)
    rng = np.random.default_rng(0)
    moves = []
    for _ in range(30):
        iou = float(rng.choice(operating_point.IOU_CHOICES))
        score = round(float(rng.uniform(0, 1)), 2)
        t = time.perf_counter()
        operating_point.explore(run_id, iou, score)
        moves.append(1000 * (time.perf_counter() - t))

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    for k, v in {"view": "operating", "task": "detection"}.items():
        at.query_params[k] = v
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    page = []
    for score in (0.1, 0.3, 0.6, 0.8, 0.95):
        t = time.perf_counter()
        at.slider(key="cmpo_score").set_value(score).run()
        page.append(1000 * (time.perf_counter() - t))
        assert not at.exception

    from core.annotations import ImagePred, ImageTruth
    preds, truths = [], []
    for _ in range(args.images):
        gt = rng.uniform(0, 200, (4, 2))
        truths.append(ImageTruth(rng.integers(1, 4, 4), np.c_[gt, gt + 30]))
        xy = np.r_[gt + rng.normal(0, 3, gt.shape), rng.uniform(0, 200, (96, 2))]
        preds.append(ImagePred(rng.integers(1, 4, 100), rng.uniform(0, 1, 100), np.c_[xy, xy + 30]))
    big = operating_points.build(preds, truths, ("background", "circle", "square", "triangle"))
    stress = []
    for _ in range(10):
        t = time.perf_counter()
        operating_points.at(big, float(rng.choice(operating_point.IOU_CHOICES)), float(rng.uniform(0, 1)))
        operating_points.pr_curve(big, 0.5)
        stress.append(1000 * (time.perf_counter() - t))

    def line(name: str, ms: float) -> str:
        return f"  {name:<46} {ms:8.1f} ms   budget ratio {ms / BUDGET_MS:5.2f}   vs fresh evaluation 1/{1000 * bench_s / ms:,.0f}"

    print(line("first answer (read + decode the matches)", first_ms))
    print(line("slider move, explore() median of 30", float(np.median(moves))))
    print(line("slider move, explore() slowest of 30", float(np.max(moves))))
    print(line("slider move, whole page rerun, median of 5", float(np.median(page))))
    print(line("slider move, whole page rerun, slowest of 5", float(np.max(page))))
    print(f"  stress: {len(big.det_score)} detections, {len(big.to_bytes()) / 1024:.0f} KiB stored; point + PR curve "
          f"median {np.median(stress):.1f} ms, slowest {np.max(stress):.1f} ms (budget ratio {np.max(stress) / BUDGET_MS:.2f})")


if __name__ == "__main__":
    main()
