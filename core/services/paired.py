"""Paired statistics for a leaderboard: each model against a reference model on the images both scored, with the
bootstrap interval and Wilcoxon p-value of core.metrics.paired, as a table the Compare and Leaderboard pages and
the CLI show."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from core.errors import InvalidInput
from core.metrics import paired
from core.metrics import registry as metric_registry
from core.services.compare import Leaderboard, image_metrics_of
from core.store import ensure_store
from core.tasks import get_task
from db import analytics

COLUMNS = ["model", "reference", "metric", "images", "left out", "infinite for the model only",
           "infinite for the reference only", "model mean", "reference mean", "difference",
           "95% interval low", "95% interval high", "Wilcoxon p", "verdict", "in words", "run_id", "reference_run_id"]


@lru_cache(maxsize=512)
def _pair(url: str, run_a: int, run_b: int, metric: str, higher: bool | None, stamps: tuple[str, str]
          ) -> paired.PairedDifference:
    """A stored run's per-image values never change, so a pair of runs is compared once per process; the runs'
    creation times are part of the key, since SQLite may give a deleted run's id to the next run."""
    values = analytics.image_values(url, [run_a, run_b], metric)
    wide = values.pivot_table(index="image", columns="run_id", values="value", aggfunc="first", dropna=False)
    if run_a not in wide or run_b not in wide:
        return paired.paired_difference(np.zeros(0), np.zeros(0), higher_is_better=higher)
    return paired.paired_difference(wide[run_a].to_numpy(float), wide[run_b].to_numpy(float), higher_is_better=higher)


def against_reference(board: Leaderboard, metric: str, reference: str | None = None) -> pd.DataFrame:
    """One row per other model: its per-image `metric` minus the reference model's (the leader when None), the
    mean difference with its bootstrap 95% interval, Wilcoxon's p and the verdict in words."""
    table = board.table
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    runs = dict(zip(model_names(board), table["run_id"].astype(int)))
    stamps = dict(zip(table["run_id"].astype(int), table["created_at"].astype(str)))
    reference = reference or next(iter(runs))
    if reference not in runs:
        raise InvalidInput("The reference model has no run on this dataset; pick one from the list.")
    higher = metric_registry.higher_is_better(metric)
    title = metric_registry.title(metric)
    url = ensure_store()
    rows = []
    for name, run in runs.items():
        if name == reference:
            continue
        d = _pair(url, run, runs[reference], metric, higher, (stamps[run], stamps[runs[reference]]))
        rows.append([name, reference, title, d.n, d.dropped, d.only_a_infinite, d.only_b_infinite, d.mean_a, d.mean_b,
                     d.mean_difference, d.ci_low, d.ci_high, d.p_value, d.verdict,
                     paired.sentence(d, name, reference, title), run, runs[reference]])
    return pd.DataFrame(rows, columns=COLUMNS)


def model_names(board: Leaderboard) -> list[str]:
    """The names against_reference uses for the board's models, leader first; a name on two rows (a model whose
    weights changed) gets the start of each weights hash."""
    table = board.table
    names = [m + (" (untrained)" if u else "") for m, u in zip(table["model"], table["untrained"])]
    twice = {n for n in names if names.count(n) > 1}
    return [f"{n} (weights {str(h)[:8]})" if n in twice else n for n, h in zip(names, table["weights_hash"])]


def default_metric(board: Leaderboard) -> str | None:
    """The per-image metric a board's paired comparison uses by default: the task's own (PSNR, F1 per image,
    correct or not, IoU), else the first stored; None when the runs stored no per-image values."""
    stored = image_metrics_of(board)
    preferred = get_task(board.task).per_image_metric
    return preferred if preferred in stored else (stored[0] if stored else None)
