"""PSNR/SSIM against scikit-image on real photos, and their edge cases."""
import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from core.data.degrade import add_gaussian_noise
from core.errors import InvalidInput
from core.metrics.image_quality import Convention, psnr, psnr_ssim, rgb_to_y, ssim, to_nchw


@pytest.mark.parametrize("name,sigma", [("astronaut", 10), ("coffee", 25), ("chelsea", 50)])
def test_psnr_ssim_match_skimage_on_real_photos(name, sigma):
    clean = getattr(data, name)()
    noisy = add_gaussian_noise(clean, sigma, seed=3)
    ours_p, ours_s = psnr_ssim(noisy, clean)
    ref_p = peak_signal_noise_ratio(clean, noisy, data_range=255)
    ref_s = structural_similarity(clean, noisy, data_range=255, channel_axis=2, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False)
    assert ours_p == pytest.approx(ref_p, abs=1e-4)
    assert ours_s == pytest.approx(ref_s, abs=1e-4)
    assert 10 < ours_p < 35 and 0 < ours_s < 1


def test_grayscale_photo_matches_skimage():
    clean = data.camera()
    noisy = add_gaussian_noise(np.repeat(clean[..., None], 3, 2), 15, seed=0)[..., 0]
    p, t = to_nchw(noisy), to_nchw(clean)
    ref = structural_similarity(clean, noisy, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert float(ssim(p, t)[0]) == pytest.approx(ref, abs=1e-4)
    assert float(psnr(p, t)[0]) == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=255), abs=1e-4)


def test_identical_images_give_infinite_psnr_and_unit_ssim():
    img = data.coffee()
    p, s = psnr_ssim(img, img)
    assert math.isinf(p) and p > 0
    assert s == pytest.approx(1.0, abs=1e-12)


def test_size_mismatch_is_an_error():
    with pytest.raises(InvalidInput, match="sizes differ"):
        psnr_ssim(np.zeros((16, 16, 3), np.uint8), np.zeros((16, 17, 3), np.uint8))


def test_batched_values_equal_single_values():
    a = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0)) * 255
    b = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(1)) * 255
    batch = psnr(a, b)
    assert batch.shape == (3,)
    for i in range(3):
        assert float(batch[i]) == pytest.approx(float(psnr(a[i], b[i])[0]), rel=1e-12)


def test_y_channel_follows_basicsr_formula_and_crops_border():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)
    b = rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)

    def y(img):
        rgb = img.astype(np.float64) / 255.0
        return 16 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]

    ya, yb = y(a)[2:-2, 2:-2], y(b)[2:-2, 2:-2]
    expected = 10 * np.log10(255.0**2 / np.mean((ya - yb) ** 2))
    ours, _ = psnr_ssim(a, b, Convention(channel="y", crop_border=2))
    assert ours == pytest.approx(expected, abs=1e-9)
    white = rgb_to_y(torch.full((1, 3, 1, 1), 255.0, dtype=torch.float64))
    assert float(white) == pytest.approx(235.0, abs=1e-3)  # limited range: white -> 235
    assert str(Convention(channel="y", crop_border=4)) == "y,range=255,crop=4"


def test_ssim_needs_a_full_window():
    with pytest.raises(InvalidInput, match="at least 11x11"):
        psnr_ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("case", ["bright", "dark", "unit range"])
def test_ssim_in_float32_stays_within_1e4_of_skimage_where_cancellation_is_worst(case):
    """Nearly flat, saturated regions make E[x^2] - E[x]^2 cancel; the float32 filtering still matches."""
    rng = np.random.default_rng(1)
    base = {"bright": 250.0, "dark": 3.0, "unit range": 0.9}[case]
    scale = 1.0 if case == "unit range" else 255.0
    clean = np.clip(base + rng.normal(0, 0.5 / 255 * scale, (64, 64)), 0, scale)
    noisy = np.clip(clean + rng.normal(0, 2 / 255 * scale, clean.shape), 0, scale)
    ref = structural_similarity(clean, noisy, data_range=scale, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    ours = float(ssim(to_nchw(noisy), to_nchw(clean), Convention(data_range=scale))[0])
    assert ours == pytest.approx(ref, abs=1e-4) and 0 < ours < 1
