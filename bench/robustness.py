"""The robustness figures of the README: degradation curves and their areas, measured in one run.

    python -m bench.robustness [classification|denoise] [--views 8] [--max-side 256]

classification: EfficientNet-Lite0 (real ImageNet weights) and its int8 and 30%-pruned variants on the labelled
photos (5 photos x views), every ImageNet-C corruption at severities 0-5: top-1 per level and the area under the
curve. denoise: every denoiser on the ten scikit-image photos at noise σ 5, 15, 25, 35, 50, 75 (FFDNet told each
σ), PSNR per level, the degraded input beside them. Runs go to a throwaway store.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import pandas as pd

CLASSIFIERS = ["efficientnet_lite0", "efficientnet_lite0_int8", "efficientnet_lite0_pruned30"]
DENOISERS = ["gaussian_denoise", "median_denoise", "bilateral_denoise", "nlm_denoise", "dncnn", "unet_denoise", "ffdnet"]


def table(curves) -> str:
    wide = curves.points.pivot_table(index="model", columns="level", values="value", sort=False)
    wide.columns = [f"{c:g}" for c in wide.columns]
    areas = curves.areas.set_index("model")[["area under the curve"]]
    return wide.join(areas).sort_values("area under the curve", ascending=False).round(3).to_string()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", nargs="*", default=["classification", "denoise"])
    ap.add_argument("--views", type=int, default=8)
    ap.add_argument("--max-side", type=int, default=256)
    args = ap.parse_args()
    os.environ["IMGLAB_DATA_DIR"] = tempfile.mkdtemp(prefix="imglab-bench-")
    from core.data import corruptions
    from core.services.robustness import run_here

    pd.set_option("display.width", 200)
    if "classification" in args.which:
        summary = []
        for name in corruptions.CORRUPTIONS:
            t = time.perf_counter()
            curves = run_here(CLASSIFIERS, {"name": "photos-classify", "views": args.views}, name)
            print(f"\n== top-1 under {name} ({time.perf_counter() - t:.0f} s) ==\n{table(curves)}", flush=True)
            summary.append(curves.areas.set_index("model")["area under the curve"].rename(name))
        print("\n== area under the top-1 curve, severities 0-5, per corruption ==")
        print(pd.concat(summary, axis=1).round(3).to_string())
    if "denoise" in args.which:
        t = time.perf_counter()
        curves = run_here(DENOISERS, {"name": "photos-denoise", "max_side": args.max_side}, "noise_sigma")
        print(f"\n== PSNR (dB) against noise σ, 10 photos ({time.perf_counter() - t:.0f} s) ==\n{table(curves)}")


if __name__ == "__main__":
    main()
