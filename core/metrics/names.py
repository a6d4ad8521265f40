"""What each stored metric is called on screen, and which ones are fractions between 0 and 1 (shown in
percent, drawn on a 0-1 axis). One table for every page, chart and job summary."""
from __future__ import annotations

TITLES = {
    "psnr": "PSNR (dB)", "psnr_y": "PSNR on Y (dB)", "ssim": "SSIM", "ssim_y": "SSIM on Y", "lpips": "LPIPS",
    "top1": "top-1 accuracy", "top5": "top-5 accuracy", "top1_prob": "top-1 probability",
    "precision": "precision", "recall": "recall", "f1": "F1", "f1_micro": "F1 (micro average)",
    "f1_macro": "F1 (macro average)", "f1_max": "F1 at best threshold", "precision_macro": "precision (macro average)",
    "recall_macro": "recall (macro average)", "map": "mAP@[.5:.95]", "map50": "mAP@0.5", "map75": "mAP@0.75",
    "mask_map": "mask mAP@[.5:.95]", "mask_map50": "mask mAP@0.5", "mask_map75": "mask mAP@0.75",
    "miou": "mean IoU", "dice": "Dice", "pixel_accuracy": "pixel accuracy", "fid": "FID", "kid": "KID",
    "fd_efficientnet_lite0": "Fréchet distance (EfficientNet-Lite0 features)", "fd": "Fréchet distance",
    "latency_ms_per_image": "latency (ms/image)", "latency_p50_ms": "latency, median (ms/batch)",
    "latency_p95_ms": "latency, 95th percentile (ms/batch)", "throughput_img_s": "throughput (images/s)",
    "peak_mem_mb": "peak memory (MB)", "num_params": "parameters",
    "val_accuracy": "validation accuracy", "train_accuracy": "training accuracy", "val_psnr": "validation PSNR (dB)",
    "val_miou": "validation mean IoU", "val_map": "validation mAP@[.5:.95]", "val_map50": "validation mAP@0.5",
}
# Name parts of scores that are fractions in [0, 1] by definition.
FRACTIONS = ("accuracy", "top1", "top5", "precision", "recall", "f1", "miou", "dice", "map", "ssim")


def title(metric: str) -> str:
    """'PSNR (dB)', 'latency (ms/image)', 'validation accuracy'; an unknown name with its underscores as spaces."""
    return TITLES.get(metric, metric.replace("_", " "))


def is_fraction(metric: str) -> bool:
    return any(part in metric for part in FRACTIONS) and "prob" not in metric
