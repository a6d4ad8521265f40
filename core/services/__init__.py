"""The API pages call. Functions take and return plain values; failures are LabError subclasses."""
from core.services.catalog import (ModelInfo, StoredModel, add_checkpoint, checkpoint_bases, checkpoint_upload_mb,
                                   clear_weights_path, delete_model, list_model_infos, retitle_model, set_weights_path,
                                   stored_models, weights_paths, weights_sources)
from core.services.benchmark import plan, run_benchmark, submit_benchmark
from core.services.classify import ClassificationResult, ImagePrediction, classify, explain
from core.services.detect import DetectionResult, detect
from core.services.generate import GenerationResult, generate
from core.services.restore import MethodResult, RestorationResult, restore
from core.services.quotas import Usage, usage
from core.services.results import delete_runs, may_delete_run, model_names, run_detail, runs_table
from core.services.segment import SegmentationResult, SegmentedImage, segment
from core.store import ensure_store
from core.data.datasets import PHOTO_SET_WORDS, PHOTO_SETS
from core.data.uploads import SAME_SIZE_OPERATIONS
from core.engine import DEVICE_CHOICES
from core.metrics.features import FEATURE_SPACES
from core.services.datasets import (UploadSummary, catalog, dataset_upload_mb, delete_upload, rename_upload,
                                    upload_dataset, uploaded)
from core.services.tasks import (TaskInfo, benchmark_options, operation_for, task_infos, task_names,
                                 tasks_with_table, viewable_tasks)
from core.services.training import (MAX_SWEEP_REPEATS, SWEEP_OPTIMIZERS, TrainingChoices, curve_notes, curves,
                                    submit_sweep, submit_training, sweep_summary, sweep_table, sweeps, trainable_models,
                                    trainable_tasks, training_choices, training_datasets)
from core.services.experiments import (EXPERIMENT_KINDS, SSL_SOURCES, experiment_curve, finished_experiments,
                                      generated_preview, submit_label_efficiency, submit_synthetic_data)
from core.services.jobs import cancel_job, job_logs, job_status, list_jobs, may_manage_job, public_text, recover_jobs

__all__ = [
    "EXPERIMENT_KINDS", "SSL_SOURCES", "experiment_curve", "finished_experiments", "generated_preview",
    "submit_label_efficiency", "submit_synthetic_data",
    "ModelInfo", "list_model_infos", "add_checkpoint", "checkpoint_bases", "set_weights_path", "clear_weights_path",
    "weights_paths", "ClassificationResult", "ImagePrediction", "classify", "explain", "DetectionResult",
    "detect", "GenerationResult", "generate", "RestorationResult", "MethodResult", "restore", "SegmentationResult",
    "SegmentedImage", "segment", "model_names", "run_detail", "runs_table",
    "ensure_store", "plan", "run_benchmark", "submit_benchmark", "PHOTO_SETS", "PHOTO_SET_WORDS", "UploadSummary", "catalog",
    "upload_dataset", "uploaded", "MAX_SWEEP_REPEATS", "SWEEP_OPTIMIZERS", "sweep_summary", "curve_notes", "curves",
    "submit_sweep", "submit_training", "sweep_table",
    "sweeps", "trainable_models", "training_datasets", "cancel_job", "job_logs", "job_status", "list_jobs", "recover_jobs",
    "checkpoint_upload_mb", "dataset_upload_mb", "public_text", "StoredModel", "delete_model", "retitle_model",
    "stored_models", "weights_sources", "Usage", "usage", "delete_runs", "may_delete_run", "delete_upload",
    "rename_upload", "may_manage_job", "TaskInfo", "benchmark_options", "operation_for", "task_infos", "task_names",
    "tasks_with_table", "viewable_tasks", "DEVICE_CHOICES", "FEATURE_SPACES", "SAME_SIZE_OPERATIONS", "TrainingChoices",
    "trainable_tasks", "training_choices",
]
