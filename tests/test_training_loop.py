"""The one training loop (core.training.loops.fit) runs every task's TrainPlan, GANs included: the options the
Fine-tune page offers work for every task that offers them, and the others are refused at submit."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from core.errors import InvalidInput
from core.jobs.context import LocalContext
from core.tasks import all_tasks, get_task
from core.tasks.base import COMMON_TRAIN_OPTIONS, Phase, TrainPlan
from core.tasks.train_config import TrainConfig
from core.training.loops import fit

CPU = torch.device("cpu")


def _cfg(**kw) -> TrainConfig:
    """A config for the loop itself (validate() is not called: the plan below is not a registered model)."""
    return TrainConfig(**{"base": "dcgan_shapes", "dataset": "shapes", "epochs": 4, "batch_size": 4, "lr": 0.1,
                          "optimizer": "sgd", "momentum": 0.0, **kw})


def _two_phase_plan(values: list[float], d_loss=None) -> tuple[TrainPlan, nn.Linear, nn.Linear]:
    """A GAN-shaped plan: two modules, two phases per step, a validation metric that follows `values` epoch by
    epoch (fd: lower is better)."""
    g, d = nn.Linear(2, 2), nn.Linear(2, 1)
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    epochs = iter(values)

    def batch(idx, rng):
        return x[idx], g(x[idx])

    phases = [Phase("d_loss", [d], d_loss or (lambda b: d(b[1].detach()).pow(2).mean() + d(b[0]).pow(2).mean()),
                    (0.5, 0.999)),
              Phase("g_loss", [g], lambda b: d(b[1]).pow(2).mean() + b[1].pow(2).mean(), (0.5, 0.999))]

    def train_mode():
        g.train()
        d.train()

    return TrainPlan(g, 8, batch, phases, lambda: {"fd": next(epochs)}, "fd", train_mode, eval_modules=[d]), g, d


def test_a_two_phase_plan_steps_both_optimisers_and_keeps_the_best_lower_is_better_epoch():
    plan, g, d = _two_phase_plan([5.0, 3.0, 4.0, 6.0])
    before_g, before_d = g.weight.detach().clone(), d.weight.detach().clone()
    result = fit(_cfg(), LocalContext(), plan, CPU)
    assert result.steps == 8 and result.epochs_run == 4  # 2 batches of 4 per epoch
    assert not torch.equal(before_g, g.weight) and not torch.equal(before_d, d.weight)
    assert result.metric == "fd" and result.best_value == 3.0 and result.best_epoch == 2  # fd: lower is better
    assert {"d_loss", "g_loss", "fd", "lr"} <= set(result.history[0])
    assert all(math.isfinite(row["d_loss"]) and math.isfinite(row["g_loss"]) for row in result.history)


def test_early_stopping_and_the_schedule_apply_to_a_gan_plan_too():
    plan, _, _ = _two_phase_plan([5.0, 6.0, 7.0, 8.0])
    result = fit(_cfg(patience=2, schedule="step"), LocalContext(), plan, CPU)
    assert result.epochs_run == 3 and result.best_epoch == 1  # two epochs without improvement, then stop
    # step schedule: x0.1 at 2/3 of the planned 8 steps (step 5); the stop came after 6 steps
    assert result.history[-1]["lr"] == pytest.approx(0.01)


def test_a_non_finite_loss_in_any_phase_stops_with_a_clear_message():
    plan, _, _ = _two_phase_plan([1.0] * 4, d_loss=lambda b: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(FloatingPointError, match="the d loss became nan at step 0; lower the learning rate"):
        fit(_cfg(), LocalContext(), plan, CPU)


def test_losses_read_back_in_batches_still_name_the_step_that_went_non_finite():
    """The loop reads its losses back at most twice a second (no GPU stall per step), yet the message names the
    step where the loss stopped being finite, and the epoch's mean loss covers every step."""
    calls = []

    def d_loss(b):
        calls.append(1)
        return torch.tensor(float("inf") if len(calls) == 6 else 1.0, requires_grad=True)
    plan, _, _ = _two_phase_plan([1.0] * 4, d_loss=d_loss)
    with pytest.raises(FloatingPointError, match="the d loss became inf at step 5; lower the learning rate"):
        fit(_cfg(), LocalContext(), plan, CPU)
    plan, _, _ = _two_phase_plan([1.0] * 4, d_loss=lambda b: torch.tensor(0.25 * len(b[0]), requires_grad=True))
    result = fit(_cfg(batch_size=3), LocalContext(), plan, CPU)  # batches of 3, 3, 2 per epoch
    assert result.history[0]["d_loss"] == pytest.approx((0.75 + 0.75 + 0.5) / 3)


def test_every_task_declares_what_its_training_uses():
    for task in all_tasks():
        assert task.train_options <= {f for f in TrainConfig.__dataclass_fields__} - COMMON_TRAIN_OPTIONS
        assert set(task.augmentations) <= {"flip", "crop", "color", "noise"}
        assert ("augment" in task.train_options) == bool(task.augmentations)
    assert get_task("generation").train_options == frozenset()  # a GAN: no backbone to freeze, no dropout, no augment
    assert get_task("classification").train_options == {"augment", "dropout", "freeze_backbone"}


@pytest.mark.parametrize("base,dataset,option,value,words", [
    ("dcgan_shapes", "shapes", "freeze_backbone", True, "Generation training does not use the option 'freeze backbone'"),
    ("dcgan_shapes", "shapes", "dropout", 0.2, "Generation training does not use the option 'dropout'"),
    ("dcgan_shapes", "shapes", "augment", ["flip"], "Generation training applies no augmentation"),
    ("dncnn", "patches", "augment", ["flip", "crop"], "Restoration training applies flip; it does not apply crop"),
    ("dncnn", "patches", "dropout", 0.1, "Restoration training does not use the option 'dropout'"),
    ("unet_shapes", "shapes", "noise_sigma", 10.0, "Segmentation training does not use the option 'noise sigma'"),
])
def test_an_option_a_task_does_not_use_is_refused_at_submit(base, dataset, option, value, words):
    with pytest.raises(InvalidInput, match=words):
        TrainConfig.from_dict({"base": base, "dataset": dataset, "pretrained": False, option: value})


def test_the_options_a_task_uses_are_accepted():
    TrainConfig.from_dict({"base": "small_cnn_digits", "dataset": "digits", "pretrained": False, "dropout": 0.2,
                           "augment": ["flip", "crop", "color", "noise"], "freeze_backbone": True})
    TrainConfig.from_dict({"base": "dncnn", "dataset": "patches", "pretrained": False, "augment": ["flip"],
                           "noise_sigma": 15.0, "patch": 32})
    TrainConfig.from_dict({"base": "unet_denoise", "dataset": "patches", "pretrained": False, "freeze_backbone": True})
    TrainConfig.from_dict({"base": "dcgan_shapes", "dataset": "shapes", "pretrained": False, "schedule": "cosine",
                           "patience": 2})


def test_the_finetune_choices_offer_only_what_the_task_uses():
    from core.services import training_choices

    gan = training_choices("generation")
    assert gan.augmentations == () and not gan.dropout and not gan.freeze_backbone and not gan.degradation
    restoration = training_choices("restoration")
    assert restoration.augmentations == ("flip",) and restoration.degradation and not restoration.dropout
    assert restoration.freeze_backbone  # a U-Net restorer trains its last decoder block and output alone
    classification = training_choices("classification")
    assert classification.augmentations == ("flip", "crop", "color", "noise") and classification.dropout
    assert classification.optimizers[0] == "adam" and classification.datasets == ("digits", "shapes", "upload")


def test_a_rng_shared_by_the_phases_gives_reproducible_runs():
    runs = []
    for _ in range(2):
        torch.manual_seed(123)  # the modules' initial weights
        plan, g, _ = _two_phase_plan([1.0] * 4)
        fit(_cfg(seed=7), LocalContext(), plan, CPU)
        runs.append(g.weight.detach().clone())
    assert torch.equal(runs[0], runs[1]) and np.isfinite(runs[0].numpy()).all()
