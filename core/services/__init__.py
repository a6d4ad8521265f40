"""The API pages call. Functions take and return plain values; failures are LabError subclasses."""
from core.services.catalog import ModelInfo, list_model_infos
from core.services.classify import ClassificationResult, ImagePrediction, classify
from core.services.restore import RestorationResult, MethodResult, restore
from core.services.results import metric_by_model, metric_names, model_names, run_detail, runs_table
from core.services.store import ensure_store

__all__ = [
    "ModelInfo", "list_model_infos", "ClassificationResult", "ImagePrediction", "classify",
    "RestorationResult", "MethodResult", "restore", "metric_by_model", "metric_names", "model_names",
    "run_detail", "runs_table", "ensure_store",
]
