"""Label efficiency: how much a self-supervised start saves in labels, next to training from scratch and to
ImageNet transfer.

1. Pretrain the small CNN's convolutional backbone contrastively on the training images without their labels
   (SimCLR: Chen et al. 2020): two random views of every image (crop-and-zoom, rotation, shift, brightness and
   contrast, noise), a projection head, and the NT-Xent loss that pulls the two views of one image together and
   pushes the other 2N-2 images of the batch away.
2. For each labelled fraction (1%, 5%, 10%, 100% by default) and each repeat, draw one class-stratified labelled
   subset and fine-tune three models on exactly that subset with the same step budget: the small CNN from
   scratch, the small CNN from the self-supervised backbone, and EfficientNet-Lite0 from its real ImageNet
   weights (a new 10-way head; inputs upsampled to 64 px to keep it affordable on a CPU).
3. Score every run on the held-out test images; the curve is test accuracy against the labelled fraction, mean
   and 95% interval over the repeats.

NT-Xent is a dozen lines here: the libraries that ship it (lightly, solo-learn) are not among this project's
dependencies, and a batch-wide loss over the views is all the method needs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.data.datasets import digits_image, digits_split
from core.data.synthetic import SHAPE_NAMES, scene
from core.annotations import DIGITS_CATEGORIES
from core.engine import pick_device
from core.errors import InvalidInput
from core.experiments import classifier
from core.experiments.curves import Curve, Point, stratified
from core.experiments.params import check, parse, total_steps_rule
from core.jobs.handlers import handler
from core.models import heads
from core.models.registry import create
from core.models.small_nets import SmallCNN
from core.models.weights import seeded_init
from core.tasks import training_sets
from core.tasks.train_config import TrainConfig

SOURCES = {"digits": "sklearn digits: 1437 training images without labels, tested on the 360 held-out digits",
           "shapes": "synthetic shapes scenes (one shape each), tested on 120 other scenes",
           "upload": "your uploaded ImageFolder zip: 80% for training, 20% for testing"}
SOURCE_WORDS = {"digits": "sklearn digits", "shapes": "synthetic shapes", "upload": "an uploaded ImageFolder"}
ARMS = ("from scratch", "self-supervised start", "ImageNet transfer (EfficientNet-Lite0)")
SMALL = "small_cnn_digits"  # its architecture (SmallCNN) and preprocessing; never its trained weights
TRANSFER = "efficientnet_lite0"
MAX_TRANSFER_BYTES = 1 << 30  # the ImageNet arm's prepared inputs (float32, kept for all its runs)


@dataclass(frozen=True)
class LabelEfficiencyParams:
    source: str = "digits"
    upload_id: str | None = None
    fractions: tuple[float, ...] = (0.01, 0.05, 0.1, 1.0)
    seeds: int = 3
    pretrain_epochs: int = 30
    pretrain_batch: int = 256
    temperature: float = 0.5
    steps: int = 300
    batch_size: int = 32
    lr: float = 2e-3
    transfer: bool = True
    transfer_size: int = 64
    shapes_count: int = 1000
    train_limit: int | None = None  # tests and quick looks: the first N training images
    test_limit: int | None = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> LabelEfficiencyParams:
        return parse(cls, raw, ints=("seeds", "pretrain_epochs", "pretrain_batch", "steps", "batch_size",
                                     "transfer_size", "shapes_count"),
                     floats=("temperature", "lr"), optional_ints=("train_limit", "test_limit"), float_lists=("fractions",),
                     bools=("transfer",), words=("source", "upload_id"))

    def validate(self) -> None:
        check([
            (self.source in SOURCES, f"Pretrain on one of: {', '.join(SOURCES)}."),
            (self.source != "upload" or bool(self.upload_id), "Choose the uploaded ImageFolder to pretrain on."),
            (bool(self.fractions) and all(0 < f <= 1 for f in self.fractions), "Labelled fractions must be in (0, 1]."),
            (len(self.fractions) <= 8, "At most 8 labelled fractions."),
            (1 <= self.seeds <= 10, "Repeat 1 to 10 times."),
            (0 <= self.pretrain_epochs <= 500, "Pretrain for 0 to 500 epochs."),
            (8 <= self.pretrain_batch <= 1024, "The pretraining batch must hold 8 to 1024 images."),
            (0.01 <= self.temperature <= 10, "The temperature must be between 0.01 and 10."),
            (32 <= self.transfer_size <= 224, "The transfer model's input size must be 32 to 224 px."),
            (16 <= self.shapes_count <= 5000, "Use 16 to 5000 shapes scenes."),
            (self.train_limit is None or self.train_limit >= 10, "Keep at least 10 training images."),
            (self.test_limit is None or self.test_limit >= 2, "Keep at least 2 test images."),
            total_steps_rule(len(self.fractions) * self.seeds * (3 if self.transfer else 2) * self.steps),
        ])
        classifier.Budget(self.steps, self.batch_size, self.lr).validate()

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"fractions": list(self.fractions)}


@dataclass(frozen=True)
class Images:
    train: list[np.ndarray]
    train_labels: np.ndarray
    test: list[np.ndarray]
    test_labels: np.ndarray
    categories: tuple[str, ...]


def source_images(p: LabelEfficiencyParams) -> Images:
    if p.source == "digits":
        tr, ytr = digits_split("train")
        te, yte = digits_split("test")
        out = Images([digits_image(x) for x in tr], ytr.astype(np.int64), [digits_image(x) for x in te],
                     yte.astype(np.int64), DIGITS_CATEGORIES)
    elif p.source == "shapes":
        train = [scene(3_000_017 + i, max_shapes=1) for i in range(p.shapes_count)]
        test = [scene(i, max_shapes=1) for i in range(120)]  # the shapes-classify benchmark set (seed 0)
        out = Images([s.image for s in train], np.array([int(s.labels[0]) - 1 for s in train]),
                     [s.image for s in test], np.array([int(s.labels[0]) - 1 for s in test]), SHAPE_NAMES)
    else:  # the Fine-tune page's 80/20 split of an uploaded ImageFolder (it refuses what is not one)
        td = training_sets.classification(TrainConfig.from_dict(
            {"base": SMALL, "dataset": "upload", "upload_id": p.upload_id, "pretrained": False}))
        assert td.categories is not None  # an ImageFolder names its classes
        out = Images(td.train.images, np.array(td.train.targets), td.val.images, np.array(td.val.targets),
                     tuple(td.categories))
    n, m = p.train_limit or len(out.train), p.test_limit or len(out.test)
    return Images(out.train[:n], out.train_labels[:n], out.test[:m], out.test_labels[:m], out.categories)


# -- SimCLR ---------------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    """SmallCNN's convolutional part and its global pooling: a 128-d representation."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean((2, 3))


def view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One random view per image (normalised inputs): crop-and-zoom to 60-100%, rotation ±15°, shift ±3 px,
    brightness ±0.4 and contrast x0.6-1.4 (in normalised units), Gaussian noise σ 0.1."""
    out = classifier.random_affine(x, gen, shift=3.0, scale=(0.6, 1.0), degrees=15.0)
    r = torch.rand(len(x), 2, 1, 1, 1, generator=gen, device=gen.device).to(x.device)
    mean = out.mean((1, 2, 3), keepdim=True)
    out = (out - mean) * (0.6 + 0.8 * r[:, 0]) + mean + (r[:, 1] * 2 - 1) * 0.4
    return out + 0.1 * torch.randn(out.shape, generator=gen, device=gen.device).to(x.device)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross-entropy): for each of the 2N views, the other view of the same
    image is the positive among the 2N-1 others."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def pretrain(x: torch.Tensor, p: LabelEfficiencyParams, device: torch.device, beat=None) -> tuple[dict[str, torch.Tensor], list[float]]:
    """The SmallCNN backbone's state after SimCLR on `x` (no labels), and the mean loss of every epoch."""
    model = seeded_init(lambda: SmallCNN(10))
    encoder = Encoder(model.features).to(device)
    projector = nn.Sequential(nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Linear(128, 64)).to(device)
    params = list(encoder.parameters()) + list(projector.parameters())
    batch = min(p.pretrain_batch, len(x))
    steps_per_epoch = max(1, len(x) // batch)
    opt = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, p.pretrain_epochs * steps_per_epoch))
    gen = torch.Generator(device=device).manual_seed(0)
    x = x.to(device)
    losses: list[float] = []
    encoder.train()
    for epoch in range(p.pretrain_epochs):
        total = torch.zeros((), device=device)
        order = torch.randperm(len(x), generator=gen, device=device)
        for s in range(steps_per_epoch):
            b = x[order[s * batch:(s + 1) * batch]]
            loss = nt_xent(projector(encoder(view(b, gen))), projector(encoder(view(b, gen))), p.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach()
            if beat is not None:  # a job's progress (it raises when the job was cancelled)
                beat(epoch, s, steps_per_epoch)
        losses.append(float(total) / steps_per_epoch)  # one read-back per epoch
    return {k: v.detach().cpu() for k, v in model.features.state_dict().items()}, losses


# -- the runs ---------------------------------------------------------------------------------------------------
def _small(num_classes: int, backbone: dict[str, torch.Tensor] | None, seed: int) -> nn.Module:
    model = seeded_init(lambda: SmallCNN(num_classes), seed)
    if backbone is not None:
        model.features.load_state_dict(backbone)
    return model


def _transfer(num_classes: int, seed: int) -> nn.Module:
    module, _ = create(TRANSFER, weights="pretrained")  # raises WeightsUnavailable: never random here
    return seeded_init(lambda: heads.set_num_classes(module, num_classes), seed)  # the new head, seeded


def run(p: LabelEfficiencyParams, ctx, device: torch.device) -> Curve:
    data = source_images(p)
    k = len(data.categories)
    budget = classifier.Budget(p.steps, p.batch_size, p.lr)
    arms = list(ARMS if p.transfer else ARMS[:2])
    total_runs = len(p.fractions) * p.seeds * len(arms)
    pretrain_share = 0.25 if p.pretrain_epochs else 0.0
    ctx.log(f"{len(data.train)} training images ({p.source}), {len(data.test)} test images, {k} classes; "
            f"{total_runs} fine-tuning runs")

    small = seeded_init(lambda: SmallCNN(k))
    x_small, x_small_test = (classifier.model_inputs(SMALL, small, imgs) for imgs in (data.train, data.test))
    x_big = x_big_test = None
    if p.transfer:  # before pretraining: missing ImageNet weights fail the job at once, not after SimCLR
        need = (len(data.train) + len(data.test)) * 3 * p.transfer_size ** 2 * 4
        if need > MAX_TRANSFER_BYTES:
            raise InvalidInput(f"The ImageNet model's inputs would take {need / 2**30:.1f} GiB at {p.transfer_size} px; "
                               f"at most {MAX_TRANSFER_BYTES / 2**30:.0f} GiB: choose a smaller input size or fewer images.")
        module = _transfer(k, 0)
        x_big, x_big_test = (classifier.model_inputs(TRANSFER, module, imgs, p.transfer_size)
                             for imgs in (data.train, data.test))
    start = time.monotonic()

    def beat(epoch, step, per_epoch):
        done = (epoch + step / per_epoch) / p.pretrain_epochs
        ctx.progress(pretrain_share * done, f"self-supervised pretraining: epoch {epoch + 1}/{p.pretrain_epochs}")
    backbone, losses = pretrain(x_small, p, device, beat) if p.pretrain_epochs else (None, [])
    pretrain_s = time.monotonic() - start
    if losses:
        ctx.log(f"pretraining: NT-Xent {losses[0]:.3f} -> {losses[-1]:.3f} over {len(losses)} epochs, {pretrain_s:.0f} s")
        for epoch, loss in enumerate(losses, 1):
            ctx.metrics(epoch, epoch, {"ssl_loss": loss}, {"ssl_loss": f"NT-Xent, temperature {p.temperature:g}, "
                                                                       f"batch {min(p.pretrain_batch, len(x_small))}"})
    y, y_test = torch.from_numpy(data.train_labels), torch.from_numpy(data.test_labels)
    curve = Curve(f"Label efficiency on {SOURCE_WORDS[p.source]}", "test accuracy (%)", "labelled share of the training images (%)",
                  arms, log_x=True)
    done = 0
    for fraction in p.fractions:
        for seed in range(p.seeds):
            subset = torch.from_numpy(stratified(data.train_labels, round(fraction * len(y)), np.random.default_rng(seed)))
            for arm in arms:
                message = f"{arm}: {fraction:.0%} of the labels ({len(subset)} images), repeat {seed + 1}/{p.seeds}"

                def tick(step, done=done, message=message):
                    ctx.progress(pretrain_share + (1 - pretrain_share) * (done + step / budget.steps) / total_runs, message)
                if arm == ARMS[2]:
                    assert x_big is not None and x_big_test is not None  # the transfer arm runs only with its inputs
                    model, x_tr, x_te = _transfer(k, seed), x_big[subset], x_big_test
                else:
                    model = _small(k, backbone if arm == ARMS[1] else None, seed)
                    x_tr, x_te = x_small[subset], x_small_test
                classifier.train(model, x_tr, y[subset], budget, seed, device, tick)
                value = classifier.accuracy(model, x_te, y_test, device)
                curve.points.append(Point(arm, 100.0 * fraction, seed, value))
                ctx.log(f"{message}: test accuracy {value:.1f}%")
                done += 1
    curve.notes = [
        f"Training images: {SOURCES[p.source]}; {len(data.train)} training and {len(data.test)} test images.",
        (f"Self-supervised start: SimCLR on the training images without labels, {p.pretrain_epochs} epochs, batch "
         f"{min(p.pretrain_batch, len(x_small))}, NT-Xent temperature {p.temperature:g}, {pretrain_s:.0f} s"
         + (f" (loss {losses[0]:.3f} -> {losses[-1]:.3f})." if losses else ".")) if p.pretrain_epochs
        else "No self-supervised pretraining was run (0 epochs): that arm starts from random weights too.",
        f"Every run: the same class-stratified labelled subset per share and repeat for all arms, {budget.words()}; "
        "no validation split and no early stopping; scored once, on the test images.",
    ] + ([f"ImageNet transfer: EfficientNet-Lite0 with its real ImageNet weights and a new {k}-way head, inputs "
          f"resized to {p.transfer_size} px."] if p.transfer else [])
    return curve


@handler("label_efficiency")
def run_label_efficiency_job(params: dict[str, Any], ctx) -> dict[str, Any]:
    p = LabelEfficiencyParams.from_dict(params["experiment"])
    device = pick_device(params.get("device") or "cpu")
    curve = run(p, ctx, device)
    return {"curve": curve.as_json(), "device": str(device)}
