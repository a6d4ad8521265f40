"""Classification: top-k postprocessing, bar chart (inputs: the model's own timm data config, core.tasks.inputs)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from core.data.datasets import Dataset
from core.engine import Engine, LoadedModel
from core.metrics import classification as cls_metrics
from core.models.registry import ModelSpec
from core.tasks import training_sets
from core.tasks.base import measured, BenchmarkParams, Evaluation, Progress, Task, TrainData, TrainPlan, Phase
from core.tasks.evaluation import category_map, label_names, model_categories, run_chunked
from core.tasks.fitting import augmented, trainable_model
from core.tasks.inputs import prepare
from core.tasks.outputs import ClassificationRow, ConfusionMatrix, EvaluationOutputs
from core.tasks.registry import register_task
from db.repository import ImageMetric

__all__ = ["Prediction", "label_names", "postprocess", "topk_figure", "TASK"]


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    prob: float


def postprocess(logits: list[torch.Tensor], labels: tuple[str, ...], k: int = 5) -> list[list[Prediction]]:
    out = []
    for row in logits:
        probs = row.float().softmax(-1)
        values, indices = probs.topk(min(k, probs.numel()))
        out.append([Prediction(int(i), labels[int(i)], float(v)) for v, i in zip(values, indices)])
    return out


def topk_figure(preds: list[Prediction], title: str = "") -> go.Figure:
    """Horizontal bars, best class on top."""
    ordered = list(reversed(preds))
    fig = go.Figure(
        go.Bar(
            x=[p.prob for p in ordered], y=[p.label for p in ordered], orientation="h",
            text=[f"{p.prob:.1%}" for p in ordered], textposition="auto",
            hovertemplate="%{y}: %{x:.2%}<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis=dict(title="probability", range=[0, 1], tickformat=".0%"),
                      height=80 + 40 * len(preds), margin=dict(l=10, r=10, t=40 if title else 10, b=10))
    return fig


class ClassificationTask(Task):
    name = "classification"
    tables = frozenset({"per_class", "class_table"})
    order = 1
    title = "Classification"
    headline = ("top1",)
    per_image_metric = "correct"
    train_datasets = ("digits", "shapes", "upload")
    train_options = frozenset({"augment", "dropout", "freeze_backbone"})
    augmentations = ("flip", "crop", "color", "noise")
    trains_by_default = True

    def evaluate(self, engine: Engine, loaded: LoadedModel, ds: Dataset, params: BenchmarkParams,
                 progress: Progress | None) -> Evaluation:
        tensors, cfg = prepare(loaded.spec, loaded.module, [s.image for s in ds.samples])
        logits, stats = run_chunked(engine, loaded, tensors, params.batch_size, progress)
        scores = torch.stack(logits).float().softmax(-1).numpy()
        assert ds.categories is not None  # classification, detection and segmentation datasets always name their classes
        cmap = category_map(ds.categories, model_categories(loaded, scores.shape[1]), "classes")
        targets_ds = np.array([s.target for s in ds.samples])
        targets_model = cmap[targets_ds]
        top1 = cls_metrics.topk_correct(scores, targets_model, 1)
        top5 = cls_metrics.topk_correct(scores, targets_model, 5)
        # predictions outside the dataset's classes count as a wrong extra class "other"
        inverse = {int(m): d for d, m in enumerate(cmap)}
        pred_model = scores.argmax(1)
        k = len(ds.categories)
        pred_ds = np.array([inverse.get(int(p), k) for p in pred_model])
        other = bool((pred_ds == k).any())
        cm = cls_metrics.confusion_matrix(targets_ds, pred_ds, k + 1)[: k + other, : k + other]
        prf = cls_metrics.precision_recall_f1(cm)
        macro = [float(x[:k].mean()) for x in (prf.precision, prf.recall, prf.f1)]  # over the dataset's classes
        conv = f"resize={cfg.get('input_size')},crop_pct={cfg.get('crop_pct')},interp={cfg.get('interpolation')}"
        metrics = [
            measured("top1", float(top1.mean()), conv), measured("top5", float(top5.mean()), conv),
            measured("precision_macro", macro[0], "mean over dataset classes, zero_division=0"),
            measured("recall_macro", macro[1], "mean over dataset classes, zero_division=0"),
            measured("f1_macro", macro[2], "mean over dataset classes, zero_division=0"),
            measured("f1_micro", prf.micro[2], "micro (= accuracy for single-label)"),
        ]
        image_metrics = [ImageMetric(s.key, "correct", float(c), "top1") for s, c in zip(ds.samples, top1)]
        image_metrics += [ImageMetric(s.key, "target_prob", float(scores[i, targets_model[i]]), "softmax")
                          for i, s in enumerate(ds.samples)]
        labels = list(ds.categories) + (["other"] if other else [])
        outputs = EvaluationOutputs(
            per_class=tuple(ClassificationRow(labels[i], float(prf.precision[i]), float(prf.recall[i]), float(prf.f1[i]),
                                              int(prf.support[i])) for i in range(k)),
            confusion=ConfusionMatrix(tuple(labels), tuple(tuple(int(v) for v in row) for row in cm)))
        return Evaluation(metrics, image_metrics, outputs, stats, {"preprocess": cfg})

    def training_data(self, cfg, spec: ModelSpec) -> TrainData:
        return training_sets.classification(cfg)

    def train_plan(self, cfg, td: TrainData, device: torch.device, engine: Engine, note) -> TrainPlan:
        spec, model, train_mode = trainable_model(cfg, td.categories, device)
        targets = torch.tensor(td.train.targets)

        def prep(images):
            tensors, _ = prepare(spec, model, images)
            return torch.stack(tensors).to(device)

        def batch(idx, rng):
            imgs, _ = augmented(td.train.images, idx, cfg.augment, rng)
            return prep(imgs), targets[idx].to(device)

        def accuracy(split) -> float:
            correct = 0
            for i in range(0, len(split.images), 64):
                logits = model(prep(split.images[i:i + 64]))
                correct += int((logits.argmax(1).cpu() == torch.tensor(split.targets[i:i + 64])).sum())
            return correct / max(1, len(split.images))

        def finish(best_row):
            return {"train_accuracy": accuracy(td.train), "val_accuracy": best_row["val_accuracy"]}

        return TrainPlan(model, len(td.train.images), batch,
                         [Phase("train_loss", [model], lambda b: F.cross_entropy(model(b[0]), b[1]))],
                         lambda: {"val_accuracy": accuracy(td.val)}, "val_accuracy", train_mode, finish=finish,
                         conventions={"val_accuracy": f"top-1 on the validation split ({len(td.val.images)} images)"})


TASK = register_task(ClassificationTask())
