"""The task registry and the job handlers' registration: everything task-specific is found through get_task, and
the job runner knows the kinds of work only by what registered them."""
import subprocess
import sys
import time

import pytest

from core.config import REPO_ROOT
from core.data.datasets import load_dataset
from core.errors import InvalidInput
from core.jobs import handlers
from core.models.registry import get_spec, list_models
from core.tasks import all_tasks, get_task, task_names
from core.tasks.base import BenchmarkParams, Task


def test_the_five_tasks_in_the_pages_order_and_every_model_has_one():
    assert task_names() == ("classification", "detection", "segmentation", "restoration", "generation")
    assert {s.task for s in list_models()} <= set(task_names())
    for task in all_tasks():
        assert isinstance(task, Task) and task.title and task.headline
        assert set(task.benchmark_options) <= set(BenchmarkParams.__dataclass_fields__)
    with pytest.raises(InvalidInput, match="Unknown task 'painting'"):
        get_task("painting")


def test_every_training_set_a_task_offers_is_declared_with_its_title():
    from core import services
    from core.tasks.training_sets import TRAINING_SETS

    for task in all_tasks():
        assert set(task.train_datasets) <= set(TRAINING_SETS), task.name
    choices = services.training_choices("restoration")
    assert choices.datasets == ("patches",) and choices.sized == frozenset({"patches"})
    assert choices.dataset_titles["patches"].startswith("photo patches from nine other scikit-image pictures")
    classification = services.training_choices("classification")
    assert classification.datasets == ("digits", "shapes", "upload") and classification.sized == frozenset({"shapes"})


def test_which_datasets_fit_which_models():
    seg = get_task("segmentation")
    instance, semantic = get_spec("maskrcnn_resnet50_fpn"), get_spec("unet_shapes")
    boxes_and_masks = load_dataset({"name": "shapes-instance", "count": 2})
    assert seg.fits(instance, boxes_and_masks) and not seg.fits(semantic, boxes_and_masks)
    assert seg.fits(semantic, load_dataset({"name": "shapes-semantic", "count": 2}))
    assert not get_task("detection").fits(get_spec("fasterrcnn_mobilenet_v3_large_fpn"), boxes_and_masks)
    assert seg.operation_for("detection", None) == "instance" and seg.options_for("semantic") == ()
    assert seg.lists_upload("detection", has_masks=True) and not seg.lists_upload("detection", has_masks=False)


def test_trainability_comes_from_declared_capabilities_not_names():
    from core.tasks.train_config import untrainable_reason

    assert get_spec("fasterrcnn_mobilenet_v3_large_fpn").trainable is True
    assert get_spec("mtcnn_face").trainable is False and "cannot be trained" in untrainable_reason(get_spec("mtcnn_face"))
    assert (untrainable_reason(get_spec("retinanet_resnet50_fpn"))
            == "Detection fine-tuning supports the Faster R-CNN and YOLO-style detectors.")
    assert untrainable_reason(get_spec("unet_shapes")) is None and untrainable_reason(get_spec("dncnn")) is None
    assert "variant or checkpoint" in untrainable_reason(get_spec("efficientnet_lite0_pruned30"))


def test_benchmark_params_are_validated_like_the_training_config():
    p = BenchmarkParams.from_dict({"batch_size": "4", "limit": "", "crop_border": "2"})
    assert (p.batch_size, p.limit, p.crop_border) == (4, None, 2)
    assert p.as_dict() == {"batch_size": 4, "score_threshold": 0.5, "y_channel": None, "crop_border": 2,
                           "samples": 256, "seed": 0, "feature_space": "auto", "limit": None}
    for bad, words in [({"batch_size": 0}, "Batch size"), ({"samples": 1}, "at least 2"),
                       ({"feature_space": "clip"}, "Feature space"), ({"speed": 1}, "Unknown benchmark parameter"),
                       ({"seed": "x"}, "must be numbers")]:
        with pytest.raises(InvalidInput, match=words):
            BenchmarkParams.from_dict(bad)


def test_a_job_kind_is_known_by_its_registration_and_recorded_with_the_job(settings_env):
    from core.jobs import runner
    from core.services.benchmark import submit_benchmark  # noqa: F401 (importing the services registers the kinds)
    from core.store import ensure_store
    from db import jobs as job_rows

    assert handlers.module_of("benchmark") == "core.benchmark.run"
    assert handlers.module_of("train") == "core.training.run"
    with pytest.raises(InvalidInput, match="Unknown job kind 'paint'"):
        runner.submit("paint", {}, title="x")
    job_id = runner.submit("sleep", {"seconds": 0.1}, title="nap")
    assert job_rows.get(ensure_store(), job_id).handler == "core.jobs.handlers"
    deadline = time.monotonic() + 120
    while runner.status(job_id).active and time.monotonic() < deadline:  # its worker imports that module and runs it
        time.sleep(0.2)
    assert runner.status(job_id).status == "done" and runner.status(job_id).result == {"slept": 0.1}
    with pytest.raises(ValueError, match="already handled"):
        handlers.handler("sleep")(lambda params, ctx: {})


def test_a_fresh_worker_process_imports_the_module_that_registered_the_kind():
    """The jobs layer imports neither benchmarks nor training: a new process knows the kind only after importing
    the module recorded with the job."""
    code = ("import sys; from core.jobs import handlers; assert 'benchmark' not in handlers.HANDLERS; "
            "assert 'core.benchmark.run' not in sys.modules; "
            "fn = handlers.resolve('benchmark', 'core.benchmark.run'); print(fn.__module__, fn.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["core.benchmark.run", "run_benchmark_job"]
    with pytest.raises(InvalidInput, match="No handler is registered for jobs of kind 'paint'"):
        handlers.resolve("paint", None)
