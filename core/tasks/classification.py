"""Classification: timm preprocessing from the model's own data config, top-k postprocessing, bar chart."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn as nn
from PIL import Image


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    prob: float


@lru_cache(maxsize=4)
def label_names(label_set: str | None, num_classes: int) -> tuple[str, ...]:
    if label_set == "imagenet-1k" and num_classes == 1000:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return tuple(info.index_to_description(i) for i in range(1000))
    return tuple(f"class {i}" for i in range(num_classes))


def data_config(module: nn.Module, input_size: tuple[int, int, int] | None = None) -> dict:
    """resize/crop/interpolation/mean/std as timm resolves them (from the model's pretrained_cfg, or for
    other models from their registered input size, whole image, ImageNet statistics); stored with top-k."""
    from timm.data import resolve_data_config, resolve_model_data_config

    if getattr(module, "pretrained_cfg", None):
        cfg = resolve_model_data_config(module)
    else:
        cfg = resolve_data_config({"input_size": input_size or (3, 224, 224), "crop_pct": 1.0,
                                   "interpolation": "bilinear"}, model=module)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


def preprocess(images: list[np.ndarray], module: nn.Module,
               input_size: tuple[int, int, int] | None = None) -> tuple[list[torch.Tensor], dict]:
    from timm.data import create_transform

    cfg = data_config(module, input_size)
    transform = create_transform(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    return [transform(Image.fromarray(img)) for img in images], cfg


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
