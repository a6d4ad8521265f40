"""Experiments: NT-Xent and the curve statistics against direct computations and scipy; a tiny label-efficiency
job and a tiny generated-data job run to completion in real workers and store their curves; the Experiments page
launches one and the Compare page draws it."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from streamlit.testing.v1 import AppTest

from core.errors import InvalidInput
from core.experiments import label_efficiency as le
from core.experiments import synthetic_data as sd
from core.experiments.curves import Curve, Point, gain, stratified, summary
from tests.test_jobs import wait_for

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def finished(services, job_id, timeout=300):
    job = wait_for(lambda: (j := services.job_status(job_id)).status in ("done", "failed", "cancelled") and j,
                   timeout=timeout, interval=0.5)
    assert job.status == "done", (job.message, services.job_logs(job_id)[-3000:])
    return job


def test_nt_xent_equals_its_definition_written_out():
    torch.manual_seed(0)
    z1, z2, tau = torch.randn(4, 8), torch.randn(4, 8), 0.5
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    losses = []
    for i in range(8):
        j = (i + 4) % 8
        others = [k for k in range(8) if k != i]
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in others)
        losses.append(-math.log(math.exp(float(z[i] @ z[j]) / tau) / denominator))
    assert float(le.nt_xent(z1, z2, tau)) == pytest.approx(sum(losses) / 8, rel=1e-5)
    # two views that agree (orthogonal to the other images) cost far less than unrelated ones
    same = torch.eye(4, 8)
    assert float(le.nt_xent(same, same, 0.1)) < 0.01 < 1.0 < float(le.nt_xent(z1, z2, 0.1))


def test_views_crop_and_zoom_rotate_and_shift_as_asked():
    from core.experiments.classifier import random_affine

    x = torch.zeros(1, 1, 32, 32)
    x[..., 12:20, 12:20] = 1.0  # an 8 px square in the centre
    gen = torch.Generator().manual_seed(0)
    zoomed = random_affine(x, gen, scale=(0.5, 0.5))  # a window of half the side, stretched to the full size
    assert float(zoomed[0, 0].sum()) == pytest.approx(4 * 64, rel=0.1) and float(zoomed[0, 0, 16, 16]) == 1.0
    assert float(zoomed[0, 0, 9, 16]) > 0.5  # the square now reaches 8 px from the centre, not 4
    same = random_affine(x, gen, scale=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)  # no shift, no rotation, full window: the image itself
    shifted = random_affine(x, torch.Generator().manual_seed(1), shift=3.0)
    moved = (shifted[0, 0] > 0.5).nonzero().float().mean(0) - 15.5
    assert 0 < float(moved.abs().max()) <= 3.01  # moved, by at most 3 px


def test_summary_and_paired_gain_match_scipy():
    values = {"a": [70.0, 74.0, 71.0], "b": [80.0, 83.0, 85.0]}
    curve = Curve("t", "acc", "x", ["a", "b"], [Point(arm, 10.0, s, v) for arm, vs in values.items()
                                               for s, v in enumerate(vs)] + [Point("a", 100.0, 0, 90.0)])
    table = summary(curve).set_index(["arm", "x"])
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values["b"]), scale=stats.sem(values["b"]))
    row = table.loc[("b", 10.0)]
    assert row["mean"] == pytest.approx(np.mean(values["b"])) and row["std"] == pytest.approx(np.std(values["b"], ddof=1))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high)) and row["n"] == 3
    assert math.isnan(table.loc[("a", 100.0)]["ci_low"]) and table.loc[("a", 100.0)]["n"] == 1  # one seed: no bar
    g = gain(curve, "b", "a").set_index("x").loc[10.0]
    diffs = np.subtract(values["b"], values["a"])
    low, high = stats.t.interval(0.95, 2, loc=diffs.mean(), scale=stats.sem(diffs))
    assert g["difference"] == pytest.approx(diffs.mean()) and g["ci_low"] == pytest.approx(low)
    assert low > 0 and bool(g["clear"]) is True  # a paired gain of 11 +- 6.6 points: distinguishable from zero


def test_stratified_subsets_hold_every_class_and_repeat_by_seed():
    labels = np.repeat(np.arange(10), [50, 50, 50, 50, 50, 50, 50, 50, 50, 5])
    pick = stratified(labels, 14, np.random.default_rng(3))
    assert len(pick) == 14 and set(labels[pick]) == set(range(10)) and len(set(pick)) == 14
    assert np.array_equal(pick, stratified(labels, 14, np.random.default_rng(3)))
    assert len(stratified(labels, 3, np.random.default_rng(0))) == 10  # at least one per class


def test_parameters_are_checked_before_anything_is_queued():
    with pytest.raises(InvalidInput, match="fractions must be in"):
        le.LabelEfficiencyParams.from_dict({"fractions": [0.5, 2]})
    with pytest.raises(InvalidInput, match="Unknown experiment parameter"):
        le.LabelEfficiencyParams.from_dict({"fractions": [0.5], "rm -rf": 1})
    with pytest.raises(InvalidInput, match="must be numbers"):
        sd.SyntheticDataParams.from_dict({"sizes": ["many"]})
    with pytest.raises(InvalidInput, match="between 10"):
        sd.SyntheticDataParams.from_dict({"sizes": [5]})
    with pytest.raises(InvalidInput, match="ImageFolder"):
        le.LabelEfficiencyParams.from_dict({"source": "upload"})
    with pytest.raises(InvalidInput, match="at least 2 test"):
        le.LabelEfficiencyParams.from_dict({"test_limit": -360})
    with pytest.raises(InvalidInput, match="true or false"):
        le.LabelEfficiencyParams.from_dict({"transfer": "maybe"})
    assert le.LabelEfficiencyParams.from_dict({"transfer": "false"}).transfer is False
    with pytest.raises(InvalidInput, match="must be a word"):
        le.LabelEfficiencyParams.from_dict({"source": ["digits"]})
    with pytest.raises(InvalidInput, match="at most 100,000"):  # 8 x 10 x 3 runs of 20000 steps
        le.LabelEfficiencyParams.from_dict({"fractions": [i / 8 for i in range(1, 9)], "seeds": 10, "steps": 20_000})
    with pytest.raises(InvalidInput, match="multiple of 10"):
        sd.SyntheticDataParams.from_dict({"synthetic": 15})


def test_generated_digits_follow_the_digit_asked_for():
    """The generator's samples, read by the digits CNN's reference weights, are mostly the digits they were asked
    for: the labels the experiment gives them mean something."""
    from core.engine import Engine
    from core.tasks.classification import prepare

    images, labels = sd.generated_digits(100, 0)
    assert len(images) == 100 and images[0].shape == (32, 32, 3) and images[0].dtype == np.uint8
    assert np.bincount(labels).tolist() == [10] * 10
    engine = Engine("cpu")
    loaded = engine.load("small_cnn_digits")
    tensors, _ = prepare(loaded.spec, loaded.module, images)
    logits, _ = engine.run(loaded, tensors, batch_size=100)
    agree = float(np.mean(torch.stack(logits).argmax(1).numpy() == labels))
    assert agree > 0.6, agree


def test_tiny_experiment_jobs_run_in_workers_and_store_their_curves(db_url):
    from core import services

    ssl = services.submit_label_efficiency(
        {"fractions": [0.1, 1.0], "seeds": 2, "pretrain_epochs": 1, "steps": 5, "train_limit": 120, "test_limit": 60,
         "transfer_size": 32})
    gan = services.submit_synthetic_data({"sizes": [10, 30], "seeds": 2, "steps": 5, "synthetic": 20, "test_limit": 60})
    job = finished(services, ssl)
    curve, table, gains = services.experiment_curve(job.id)
    assert curve.arms == list(le.ARMS) and len(curve.points) == 2 * 2 * 3
    assert {p.x for p in curve.points} == {10.0, 100.0}
    assert all(abs(p.value * 60 / 100 - round(p.value * 60 / 100)) < 1e-9 for p in curve.points)  # k of 60 test digits
    assert len(table) == 6 and (table["n"] == 2).all()
    assert [g["comparison"].iloc[0] for g in gains] == [f"{le.ARMS[1]} − {le.ARMS[0]}", f"{le.ARMS[2]} − {le.ARMS[0]}"]
    assert any("SimCLR" in n for n in curve.notes) and any("real ImageNet weights" in n for n in curve.notes)
    points = services.curves([job.id])
    assert points["name"].tolist() == ["ssl_loss"] and points["convention"].iloc[0].startswith("NT-Xent")

    job = finished(services, gan)
    curve, table, _ = services.experiment_curve(job.id)
    assert curve.arms == list(sd.ARMS) and sorted({p.x for p in curve.points}) == [10.0, 30.0]
    assert len(curve.points) == 8 and any("training images only" in n for n in curve.notes)
    from core.jobs import runner

    other = runner.submit("sleep", {"seconds": 0.1}, title="not an experiment")
    with pytest.raises(InvalidInput, match="not an experiment"):
        services.experiment_curve(other)


def test_experiments_page_launches_and_compare_draws_the_curve(db_url):
    from core import services

    at = AppTest.from_file(APP, default_timeout=180)
    at.switch_page("pages/experiments.py").run()
    assert not at.exception
    at.multiselect(key="gx_sizes").set_value([10, 20])
    at.number_input(key="gx_seeds").set_value(2)
    at.number_input(key="gx_steps").set_value(10)
    at.number_input(key="gx_synthetic").set_value(20)
    at.button(key="gx_launch").click().run()
    assert not at.exception and not at.error
    [job] = services.list_jobs("synthetic_data")
    assert job.params["experiment"]["sizes"] == [10, 20] and job.owner == "local"
    finished(services, job.id)
    at.run()
    assert [link.proto.label for link in at.get("page_link")] == [f"Curve of experiment #{job.id}"]
    at.toggle(key="gx_preview").set_value(True).run()
    [grid] = at.get("image")
    assert [i.caption for i in grid.proto.imgs] == [f"generated {d}" for d in range(10) for _ in range(2)]
    assert any("not real digits" in c.value for c in at.caption)

    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["view"] = "experiments"
    at.query_params["job"] = str(job.id)
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    [chart] = at.get("plotly_chart")
    assert "Generated training data" in chart.proto.spec
    table = at.dataframe[0].value
    assert table["method"].tolist() == [sd.ARMS[0]] * 2 + [sd.ARMS[1]] * 2
    assert table["real training images"].tolist() == [10.0, 20.0, 10.0, 20.0] and (table["repeats"] == 2).all()
    assert any("points" in t.value and "repeats" in t.value for t in at.text)


def test_an_experiment_whose_weights_are_missing_is_refused_before_queueing(db_url, no_reference_weights):
    from core import services

    with pytest.raises(InvalidInput, match="weights of cdcgan_digits"):
        services.submit_synthetic_data({"sizes": [10], "seeds": 1, "steps": 5, "synthetic": 20})
    with pytest.raises(InvalidInput, match="not an ImageFolder"):
        services.submit_label_efficiency({"source": "upload", "upload_id": "../../etc"})
    assert services.list_jobs() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_the_gpu_views_and_classifier_runs_use_the_device():
    """The CUDA twin of the view and tiny-run tests: generators, batches and the loss stay on the GPU."""
    from core.experiments import classifier

    device = torch.device("cuda")
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(16, 3, 32, 32, device=device)
    assert le.view(x, gen).device.type == "cuda"
    model = classifier.train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2)), x.cpu(),
                             torch.arange(16) % 2, classifier.Budget(steps=3, batch_size=8), 0, device)
    assert next(model.parameters()).device.type == "cuda"
    assert classifier.accuracy(model, x.cpu(), torch.arange(16) % 2, device) in {100 * k / 16 for k in range(17)}


def test_pretraining_sources_shapes_and_an_uploaded_imagefolder(db_url):
    """The shapes scenes and an uploaded ImageFolder (its 80/20 split) as unlabelled images; a tiny run on the
    upload learns its own two classes."""
    from core import services
    from core.jobs.context import LocalContext
    from tests.conftest import shapes_imagefolder

    shapes = le.source_images(le.LabelEfficiencyParams.from_dict({"source": "shapes", "shapes_count": 16}))
    assert len(shapes.train) == 16 and len(shapes.test) == 120 and shapes.categories == ("circle", "square", "triangle")
    assert set(shapes.train_labels) <= {0, 1, 2} and shapes.train[0].shape == (64, 64, 3)

    upload = services.upload_dataset(shapes_imagefolder(30), "shapes.zip")
    p = le.LabelEfficiencyParams.from_dict({"source": "upload", "upload_id": upload.id, "fractions": [0.5, 1.0],
                                            "seeds": 1, "pretrain_epochs": 1, "pretrain_batch": 8, "steps": 5,
                                            "transfer": False})
    data = le.source_images(p)
    assert data.categories == ("angular", "round") and (len(data.train), len(data.test)) == (24, 6)
    curve = le.run(p, LocalContext(), torch.device("cpu"))
    assert curve.arms == list(le.ARMS[:2]) and len(curve.points) == 4
    assert all(abs(pt.value * 6 / 100 - round(pt.value * 6 / 100)) < 1e-9 for pt in curve.points)  # k of 6
