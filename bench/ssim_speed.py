"""SSIM speed against scikit-image on a 512x512 RGB photo (and the same image batched on a GPU when there is one).

    python -m bench.ssim_speed [--repeats 7] [--threads 2]

Prints the best-of-N time of each and the ratio (scikit-image / ours), with the largest difference of the values.
"""
from __future__ import annotations

import argparse
import time

import torch
from skimage import data
from skimage.metrics import structural_similarity

from core.data.degrade import add_gaussian_noise
from core.metrics.image_quality import ssim, to_nchw


def best_of(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clean = data.astronaut()[:512, :512]
    noisy = add_gaussian_noise(clean, 25, seed=0)

    def reference():
        return structural_similarity(clean, noisy, data_range=255, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)

    def ours():  # from the uint8 arrays, as the benchmarks call it
        return float(ssim(to_nchw(noisy), to_nchw(clean))[0])

    diff = abs(ours() - reference())
    t_ref, t_ours = best_of(reference, args.repeats), best_of(ours, args.repeats)
    print(f"512x512 RGB, {args.threads} CPU threads: scikit-image {t_ref * 1000:.1f} ms, ours {t_ours * 1000:.1f} ms; "
          f"speed-up {t_ref / t_ours:.2f}x; |difference| {diff:.2e}")
    if torch.cuda.is_available():
        p, t = to_nchw(noisy).cuda().repeat(16, 1, 1, 1), to_nchw(clean).cuda().repeat(16, 1, 1, 1)

        def on_gpu():
            ssim(p, t)
            torch.cuda.synchronize()

        t_gpu = best_of(on_gpu, args.repeats) / 16
        print(f"GPU ({torch.cuda.get_device_name()}), batch of 16: {t_gpu * 1000:.2f} ms per image; "
              f"{t_ref / t_gpu:.1f}x scikit-image on the CPU")


if __name__ == "__main__":
    main()
