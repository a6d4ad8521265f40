"""A large synthetic results store (deterministic from a seed) for the query tests and bench/compare_queries.py:
40 models (every 5th untrained) x 2 datasets, `n_runs` runs (every 13th a playground run), 20 metrics per run
and 8 per-image values per run, inserted in bulk."""
from __future__ import annotations

from datetime import datetime, timedelta, UTC

import numpy as np
import pandas as pd
from sqlalchemy import insert

from db import migrate
from db.models import DatasetRow, ImageMetricRow, ModelRow, RunMetricRow, RunRow
from db.session import get_engine

N_MODELS, METRICS, IMAGES = 40, [f"m{i:02d}" for i in range(20)], 8


def build_store(url: str, n_runs: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, list[dict]]:
    """Returns (runs frame: run_id, model_id, dataset_id, benchmark), metric values [run, metric],
    per-image values [run, image], and the model rows."""
    migrate.upgrade(url)
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    models = [{"id": i + 1, "name": f"model{i:02d}", "task": "restoration", "source": "test",
               "weights_status": "random" if i % 5 == 0 else "pretrained", "weights_hash": f"h{i}", "weights_origin": "",
               "num_params": 1000 * (i + 1), "meta": {"title": f"Model {i}"}, "created_at": t0} for i in range(N_MODELS)]
    datasets = [{"id": d + 1, "name": f"set{d}", "kind": "synthetic", "content_hash": f"c{d}", "num_items": IMAGES,
                 "meta": {"title": f"Set {d}"}, "created_at": t0} for d in range(2)]
    run_model = rng.integers(1, N_MODELS + 1, n_runs)
    run_dataset = rng.integers(1, 3, n_runs)
    runs = [{"id": r + 1, "model_id": int(run_model[r]), "dataset_id": int(run_dataset[r]), "job_id": None,
             "task": "restoration", "kind": "benchmark" if r % 13 else "playground", "status": "done", "device": "cpu",
             "dtype": "float32", "batch_size": 1, "seed": 0, "params": {}, "outputs": {}, "code_version": "t",
             "versions": {}, "created_at": t0 + timedelta(seconds=r), "finished_at": t0} for r in range(n_runs)]
    values = rng.normal(30, 3, (n_runs, len(METRICS)))
    values[7 % n_runs, 0] = np.inf  # an infinite PSNR: counted, never averaged
    metrics = [{"run_id": r + 1, "name": m, "value": float(values[r, j]), "convention": "rgb,range=255,crop=0",
                "higher_is_better": j != 1} for r in range(n_runs) for j, m in enumerate(METRICS)]
    per_image = rng.normal(30, 5, (n_runs, IMAGES))
    images = [{"run_id": r + 1, "image_key": f"img{k}", "name": "psnr", "value": float(per_image[r, k]), "convention": ""}
              for r in range(n_runs) for k in range(IMAGES)]
    with get_engine(url).begin() as conn:
        for table, rows in ((ModelRow, models), (DatasetRow, datasets), (RunRow, runs), (RunMetricRow, metrics),
                            (ImageMetricRow, images)):
            conn.execute(insert(table.__table__), rows)
    frame = pd.DataFrame({"run_id": np.arange(1, n_runs + 1), "model_id": run_model, "dataset_id": run_dataset,
                          "benchmark": [r % 13 != 0 for r in range(n_runs)]})
    return frame, values, per_image, models
