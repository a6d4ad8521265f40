"""Read side of the store for the Results page."""
from __future__ import annotations

from typing import Any

import pandas as pd

from core.errors import InvalidInput
from core.services.store import ensure_store
from db import repository


def runs_table(task: str | None = None, models: list[str] | None = None, include_untrained: bool = True,
               limit: int = 500, run_ids: list[int] | None = None) -> pd.DataFrame:
    return repository.list_runs(ensure_store(), task=task or None, models=models or None,
                                include_untrained=include_untrained, limit=limit, run_ids=run_ids)


def metric_names(task: str | None = None) -> list[str]:
    return repository.metric_names(ensure_store(), task or None)


def model_names(task: str | None = None) -> list[str]:
    return repository.model_names(ensure_store(), task or None)


def metric_by_model(metric: str, task: str | None = None, models: list[str] | None = None,
                    include_untrained: bool = True) -> pd.DataFrame:
    return repository.metric_by_model(ensure_store(), metric, task=task or None, models=models or None,
                                      include_untrained=include_untrained)


def run_detail(run_id: Any) -> dict[str, Any]:
    try:
        rid = int(run_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"Run id must be a number, got {str(run_id)[:40]!r}.") from None
    detail = repository.run_detail(ensure_store(), rid)
    if detail is None:
        raise InvalidInput(f"There is no run #{rid}.")
    return detail
