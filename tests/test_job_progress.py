"""What a job tells its user while it runs and when it ends: progress words, time left, refusals at launch,
the trained model's scores, curve axes, server paths kept out of messages."""
import pytest

from core.jobs import eta
from core.wording import count


# -- time left ---------------------------------------------------------------------------------------------
def watched(*samples):
    track = None
    for t, p in samples:
        track = eta.observe(track, t, p)
    return track


def test_no_estimate_before_two_progress_changes_a_few_seconds_apart():
    assert eta.describe(None, 0.0, 0.0) == ""
    assert eta.describe(watched((0, 0.1)), 30, 0.1) == ""  # one value seen: no rate yet
    assert eta.describe(watched((0, 0.1), (2, 0.2)), 3, 0.2) == ""  # one change: no rate yet
    assert eta.describe(watched((0, 0.1), (2, 0.2), (4, 0.25)), 4, 0.25) == ""  # 2 s of watched progress: too short


def test_rate_is_measured_from_the_first_watched_change_not_from_the_start():
    # the job sat at 0.1 for 60 s while it loaded its model; then 0.2 at t=62 and 0.4 at t=72: 0.02 per second
    track = watched((0, 0.1), (62, 0.2), (72, 0.4))
    assert eta.seconds_left(track, 72) == pytest.approx(30.0)
    assert eta.describe(track, 72, 0.4) == "about 30 s left"
    assert eta.describe(track, 80, 0.4) == "about 20 s left"  # counts down between changes
    assert eta.describe(track, 99, 0.4) == "less than 5 s left"
    assert eta.describe(track, 130, 0.4) == ""  # overdue at 40%: no estimate rather than "about 0 s"


def test_overdue_near_the_end_reads_finishing_and_minutes_are_rounded():
    track = watched((0, 0.0), (10, 0.5), (20, 0.95))
    assert eta.describe(track, 40, 0.95) == "finishing"
    slow = watched((0, 0.0), (10, 0.02), (70, 0.05))  # 3% in 60 s: 95% left takes 1900 s
    assert eta.seconds_left(slow, 70) == pytest.approx(1900.0)
    assert eta.describe(slow, 70, 0.05) == "about 32 min left"
    assert eta.describe(watched((0, 0.0), (10, 0.1), (20, 0.2)), 20, 0.2) == "about 1 min left"  # 80 s
    assert eta.describe(watched((0, 0.0), (10, 0.1), (20, 0.2)), 50, 0.2) == "about 50 s left"


def test_estimate_does_not_jump_with_one_slow_step():
    # steady 1% per second, then one step that took 10 s: the cumulative rate moves the estimate a little
    track = watched((0, 0.0), *[(t, t / 100) for t in range(1, 31)])
    before = eta.seconds_left(track, 30)
    track = eta.observe(track, 40, 0.31)
    after = eta.seconds_left(track, 40)
    assert before == pytest.approx(70.0) and after == pytest.approx(0.69 / (0.30 / 39))
    assert abs(after - before) < 25
    assert eta.observe(track, 41, 0.2).start_t is None  # progress going back starts the watch again


def test_counts_agree_with_their_number():
    assert count(1, "epoch") == "1 epoch"
    assert count(2, "epoch") == "2 epochs"
    assert count(0, "image") == "0 images"
    assert count(1, "child", "children") == "1 child"


# -- the benchmark's progress words ----------------------------------------------------------------------------
def test_benchmark_progress_names_the_model_that_is_running(settings_env):
    from core.engine import Engine
    from core.services.benchmark import run_benchmark

    calls = []
    outcomes = run_benchmark(Engine("cpu"), ["gaussian_denoise", "median_denoise"],
                             {"name": "photos-denoise", "limit": 3, "max_side": 48},
                             progress=lambda f, m, force=False: calls.append((round(f, 4), m, force)))
    assert [o.error for o in outcomes] == [None, None]
    messages = [m for _, m, _ in calls]
    assert messages[0] == "preparing the dataset" and calls[0][2] is True
    first = messages.index("model 1/2: Gaussian filter (σ=1) — loading the model")
    second = messages.index("model 2/2: Median filter (3x3) — loading the model")
    assert calls[second][2] is True  # a new model is always written, never dropped by the throttle
    # the three photos make one slice of at most 4 images, and its progress names the model
    assert messages[first + 1] == "model 1/2: Gaussian filter (σ=1) — image 3/3"
    assert messages[second - 2:second] == ["model 1/2: Gaussian filter (σ=1) — scoring image 3/3",
                                           "model 1/2: Gaussian filter (σ=1) — results stored"]
    assert all("Median" in m for m in messages[second:])
    fractions = [f for f, _, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert calls[second][0] == 0.5


def test_slices_hold_whole_batches_and_photos_of_different_sizes_report_a_few_at_a_time():
    import torch

    from core.tasks.evaluation import slices

    same = [torch.zeros(3, 8, 8)] * 5
    mixed = [torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), torch.zeros(3, 9, 8), torch.zeros(3, 8, 8)]
    assert slices(same, 4, 4) == [(0, 4), (4, 5)]
    assert slices(same, 2, 3) == [(0, 4), (4, 5)]  # a batch of 2 is never cut to fill a slice of 3
    assert slices(same, 8, 2) == [(0, 5)]
    assert slices(mixed, 4, 4) == [(0, 4)]  # batches 2, 1, 1: the slice closes at 4 images
    assert slices(mixed, 1, 2) == [(0, 2), (2, 4)]
    assert slices(mixed, 4, 1, min_batches=2) == [(0, 3), (3, 4)]  # on a GPU: two batches in flight per slice


# -- refused at launch -----------------------------------------------------------------------------------------
def test_a_benchmark_of_models_without_weights_is_refused_before_it_is_queued(db_url):
    from core.errors import LabError
    from core.services.benchmark import require_weights, submit_benchmark
    from core.services.jobs import list_jobs

    with pytest.raises(LabError) as refused:
        submit_benchmark(["resnet18", "small_cnn_digits", "vgg11"], {"name": "shapes-classify", "count": 4})
    text = str(refused.value)
    assert text.startswith("No pretrained weights for resnet18 and vgg11 on this server")
    assert "Models page" in text and "random weights" in text and "small_cnn_digits" not in text
    assert list_jobs() == []
    require_weights(["resnet18"], allow_random=True)  # random weights were asked for: accepted


# -- a training job's words and result --------------------------------------------------------------------------
class Recorder:
    def __init__(self):
        self.job_id, self.calls, self.lines, self.owner = None, [], [], None

    def progress(self, fraction, message=None, force=False):
        self.calls.append((fraction, message))

    def log(self, line):
        self.lines.append(line)

    def metrics(self, epoch, step, values, conventions=None):
        pass

    def save_partial(self, state):
        pass


def test_a_training_job_says_what_it_does_and_its_result_reads_as_words(settings_env, no_reference_weights, monkeypatch):
    import core.training.loops as loops
    from core.services.training import training_outcome

    monkeypatch.setattr(loops, "READ_BACK_S", 0.0)  # every step reports (by default at most twice a second)
    from core.tasks.train_config import TrainConfig
    from core.training.run import TRAIN_SHARE, run_training_job

    cfg = TrainConfig.from_dict({"base": "small_cnn_digits", "dataset": "shapes", "pretrained": False, "epochs": 1,
                                 "max_steps": 4, "train_size": 16, "batch_size": 8, "test_limit": 4,
                                 "name": "words-cnn"})
    ctx = Recorder()
    result = run_training_job({"config": cfg.as_dict(), "device": "cpu"}, ctx)
    messages = [m for _, m in ctx.calls]
    assert messages[:2] == ["preparing the training data", "loading the model small_cnn_digits"]
    assert "epoch 1/1, step 1/2" in messages[2] and messages[4] == "epoch 1/1: validating"
    assert "registering the trained model" in messages
    testing = [(f, m) for f, m in ctx.calls if m.startswith("testing on the held-out set: ")]
    assert testing[0][1] == "testing on the held-out set: preparing the dataset"
    assert "testing on the held-out set: words-cnn — image 4/4" in messages
    assert all(f <= TRAIN_SHARE for f, m in ctx.calls if not m.startswith("testing"))
    # 2 of 4 allowed steps are all one epoch has: the bar reaches the training share then, not half of it
    assert [f for f, m in ctx.calls if m == "epoch 1/1: validating"] == [pytest.approx(TRAIN_SHARE)]
    assert [f for f, m in ctx.calls if m.startswith("epoch 1/1, step 1/2")] == [pytest.approx(TRAIN_SHARE / 2)]
    assert all(TRAIN_SHARE <= f <= 1.0 for f, _ in testing) and testing[-1][0] == pytest.approx(1.0)

    out = training_outcome(7, result)
    assert out.model == "words-cnn" and out.test_run == result["run_id"] and out.test_error is None
    scores = dict(out.scores)
    assert set(scores) == {"top-1 accuracy", "top-5 accuracy", "precision (macro average)", "recall (macro average)",
                           "F1 (macro average)", "F1 (micro average)"}  # no memory or speed among the scores
    assert scores["top-1 accuracy"] == f"{100 * result['test_top1']:.1f} %"
    assert out.best == f"validation accuracy {100 * result['val_accuracy']:.1f} % (best, at epoch 1 of 1)"


def test_metric_values_read_as_a_student_reads_them():
    from core.services.training import metric_name, metric_value

    assert metric_value("top1", 0.6481) == "64.8 %"
    assert metric_value("psnr", 28.314) == "28.31 dB"
    assert metric_value("psnr", float("inf")) == "infinite"
    assert metric_value("fid", 41.23456) == "41.23"
    assert metric_value("map50", None) == "not computed"
    assert metric_name("map") == "mAP@[.5:.95]" and metric_name("some_new_metric") == "some new metric"


def test_a_training_title_counts_its_epochs(db_url, monkeypatch):
    from core.jobs import runner
    from core.services import training

    titles = []
    monkeypatch.setattr(runner, "submit", lambda kind, params, title, device, owner: titles.append(title) or 1)
    training.submit_training({"base": "small_cnn_digits", "dataset": "shapes", "pretrained": False, "epochs": 1})
    training.submit_training({"base": "small_cnn_digits", "dataset": "shapes", "pretrained": False, "epochs": 3})
    assert titles == ["train small_cnn_digits on shapes (adam, lr 0.001, 1 epoch)",
                      "train small_cnn_digits on shapes (adam, lr 0.001, 3 epochs)"]


def test_no_curve_note_says_why():
    from core.services.training import no_curve_note

    assert no_curve_note(4, "failed") == "Job #4 stored no epoch: it failed before the first epoch ended."
    assert no_curve_note(5, "cancelled") == "Job #5 stored no epoch: it was cancelled before the first epoch ended."
    assert no_curve_note(6, "running").startswith("Job #6 has not finished its first epoch yet")


# -- curves ------------------------------------------------------------------------------------------------------
def test_a_one_epoch_accuracy_curve_has_a_zero_to_one_axis_and_a_loss_axis_from_zero():
    import pandas as pd

    from core.charts import training_curves

    points = pd.DataFrame({"job_id": [3, 3], "epoch": [1, 1], "step": [2, 2], "name": ["train_loss", "val_accuracy"],
                           "value": [1.231, 0.648]})
    fig = training_curves(points, ["train_loss", "val_accuracy"], {3: "#3 adam"}).to_dict()["layout"]
    assert fig["yaxis2"]["range"] == [0, 1.05] and fig["yaxis2"]["tickformat"] == ".0%"
    assert fig["yaxis"]["range"] == [0, pytest.approx(1.231 * 1.15)]
    assert fig["xaxis"]["range"] == [0.5, 1.5]
    psnr = pd.DataFrame({"job_id": [3], "epoch": [1], "step": [2], "name": ["val_psnr"], "value": [27.5]})
    layout = training_curves(psnr, ["val_psnr"]).to_dict()["layout"]
    assert "range" not in layout["yaxis"]  # decibels are not squeezed into 0-1


# -- stages and paths ------------------------------------------------------------------------------------------
def test_a_stage_draws_its_part_of_the_bar():
    from core.jobs.context import Stage

    ctx = Recorder()
    stage = Stage(ctx, 0.9, 1.0, "testing: ")
    stage.progress(0.5, "image 2/4", force=True)
    stage.log("a line")
    assert ctx.calls == [(pytest.approx(0.95), "testing: image 2/4")] and ctx.lines == ["a line"]


def test_job_messages_and_logs_show_no_server_paths(settings_env):
    from core.config import REPO_ROOT, get_settings
    from core.services.jobs import public_text

    data = get_settings().data_dir
    text = (f"could not read {data}/uploads/abc/x.png\nFile \"{REPO_ROOT}/core/engine.py\", line 3\n"
            "weights at /srv/models/secret/resnet18.pth; see https://download.pytorch.org/models/r.pth and /results?run=3")
    shown = public_text(text)
    assert str(data) not in shown and str(REPO_ROOT) not in shown and "/srv/models" not in shown
    assert "<data folder>/uploads/abc/x.png" in shown and "<app>/core/engine.py" in shown
    assert ".../resnet18.pth" in shown and "https://download.pytorch.org/models/r.pth" in shown
    assert "/results?run=3" in shown


def test_job_results_and_reproduction_messages_show_no_server_paths(db_url):
    from core.config import get_settings
    from core.engine import Engine
    from core.services import jobs as job_service
    from core.services.benchmark import run_benchmark
    from core.services.reproduce import reproduction
    from core.store import ensure_store
    from db import jobs as job_rows

    [run] = run_benchmark(Engine("cpu"), ["gaussian_denoise"], {"name": "photos-denoise", "limit": 1, "max_side": 32})
    data = get_settings().data_dir
    leak = f"{data}/uploads/abc/x.png is broken"
    url = ensure_store()
    job_id = job_rows.create(url, "benchmark", "reproduce", {"reproduces": run.run_id}, "cpu")
    assert job_rows.finish(url, job_id, "failed", leak, {"errors": {"m": leak}, "test_error": leak},
                           from_states=("queued",))
    shown = job_service.job_status(job_id)
    assert str(data) not in repr(shown.message) + repr(shown.result)
    assert shown.result["errors"]["m"] == shown.result["test_error"] == "<data folder>/uploads/abc/x.png is broken"
    assert reproduction(run.run_id).job.message == "<data folder>/uploads/abc/x.png is broken"
