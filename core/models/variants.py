"""Deployment variants the source texts recommend, each registered as its own entry so it can be benchmarked
beside the original: dynamic int8 quantization (nn.Linear layers, CPU kernels) and global magnitude
(L1, unstructured) pruning of conv and linear weights, made permanent."""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune

from core.models.spec import WeightsInfo, register_model, registered


def quantize_int8(module: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(module.cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def prune_global(module: nn.Module, amount: float) -> nn.Module:
    params = [(m, "weight") for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for m, name in params:
        prune.remove(m, name)
    return module


def sparsity(module: nn.Module) -> float:
    weights = [m.weight for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total


def _derived(info: WeightsInfo, tag: str) -> WeightsInfo:
    digest = hashlib.sha256(f"{info.sha256 or info.origin}|{tag}".encode()).hexdigest() if info.sha256 else None
    return WeightsInfo(info.status, digest, f"{info.origin} + {tag}")


def register_variant(base: str, kind: str, amount: float = 0.3) -> str:
    spec = registered(base)
    transform: Callable[[nn.Module], nn.Module]
    if kind == "int8":
        name, tag = f"{base}_int8", "dynamic int8 (nn.Linear)"
        transform = quantize_int8
    elif kind == "pruned":
        pct = int(round(amount * 100))
        name, tag = f"{base}_pruned{pct}", f"L1 global unstructured pruning {pct}%"
        transform = lambda m: prune_global(m, amount)  # noqa: E731
    else:
        raise ValueError(f"unknown variant kind {kind!r}")

    def build(pretrained: bool):
        module, info = spec.builder(pretrained)
        return transform(module.eval()), _derived(info, tag)

    fields = {k: getattr(spec, k) for k in ("task", "source", "input_size", "labels", "categories", "operation",
                                            "scale", "preprocessing", "availability", "license", "noise_level_input", "trainable")}
    register_model(name, title=f"{spec.title or base} · {tag}",
                   description=f"{spec.description} Variant: {tag}.", weights=f"{spec.weights}, then {tag}",
                   amp=spec.amp and kind != "int8", cpu_only=kind == "int8", base=base, **fields)(build)
    return name


register_variant("efficientnet_lite0", "int8")
register_variant("efficientnet_lite0", "pruned", 0.3)
