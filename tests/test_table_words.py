"""Words a student reads: datasets and conventions named in words, metric headers with units."""
import pytest

from core.data.datasets import describe, load_dataset, spec_from_name
from core.metrics.registry import title as metric_title
from core.services.compare import short_convention
from core.services.datasets import dataset_title


def test_builtin_datasets_are_titled_in_words_from_their_spec_and_size():
    ds = load_dataset({"name": "photos-denoise"})
    assert ds.name == "photos-denoise(limit=10,max_side=256,photos=skimage,seed=0,sigma=25.0)"
    assert ds.title == "skimage photos, noise σ 25, 10 images, long side 256 px"
    assert dataset_title(ds.name) == ds.title  # the same words from the name the store keeps
    assert describe(spec_from_name("photos-denoise(first=2,limit=10,max_side=64,photos=skimage,seed=0,sigma=25.0)")) \
        == "skimage photos, noise σ 25, 2 images, long side 64 px"  # a benchmark's image limit
    assert load_dataset({"name": "photos-sr", "photos": "sklearn", "scale": 3}).title \
        == "sklearn photos, bicubic downscale ×3, 2 images, long side 256 px"
    assert load_dataset({"name": "photos-deblur", "noise_sigma": 5, "limit": 3}).title \
        == "skimage photos, blur σ 2 + noise σ 5, 3 images, long side 256 px"
    assert load_dataset({"name": "digits", "limit": 40}).title == "sklearn digits, test split, 40 images"
    assert load_dataset({"name": "shapes-detect", "count": 8, "seed": 3}).title == "synthetic shapes with boxes, 8 images, seed 3"


def test_playground_inputs_and_uploads_are_titled_in_words():
    assert dataset_title("builtin:camera|type=gaussian_noise,sigma=30.0,seed=0,scale_0_255=True") \
        == "camera (sample photo), noise σ 30"
    assert dataset_title("builtin:camera|type=bicubic_downscale,scale=4,library=PIL") \
        == "camera (sample photo), bicubic downscale ×4"
    assert dataset_title("upload:chelsea.jpg") == "chelsea.jpg (uploaded)"
    assert dataset_title("upload:a.png+2") == "a.png and 2 more (uploaded)"
    assert dataset_title("upload(id=7f3a)", "Leaves of my garden") == "Leaves of my garden"  # the uploader's title


@pytest.mark.parametrize("stored, words", [
    ("rgb,range=255,crop=0, mean of per-image", "RGB, values 0-255, no border crop, mean of per-image values"),
    ("y,range=255,crop=4, gaussian 11/1.5, mean of per-image",
     "Y channel (BasicSR), values 0-255, 4 px border cropped, Gaussian window 11, σ 1.5, mean of per-image values"),
    ("device=cpu,batch=8,p50/p95 per batch,warmup=1,mem=process_rss",
     "timing: 1 warm-up pass, then measured on cpu in batches of 8 (median and 95th percentile per batch); "
     "memory: peak resident memory (RSS) of the process that ran the model"),
    ("device=cuda,batch=32,p50/p95 per batch,warmup=2,mem=cuda_max_allocated",
     "timing: 2 warm-up passes, then measured on cuda in batches of 32 (median and 95th percentile per batch); "
     "memory: peak CUDA memory allocated by PyTorch"),
    ("device=cpu,batch=4,ran=4x2+1x1,p50/p95 per batch,warmup=1 batch,mem=process_rss",
     "timing: 1 warm-up batch, then measured on cpu in batches of up to 4 (ran 2 batches of 4 and 1 batch of 1; median "
     "and 95th percentile per batch); memory: peak resident memory (RSS) of the process that ran the model"),
    ("device=cuda,batch=64,ran=64x16,p50/p95 per batch,warmup=1 batch,mem=cuda_max_allocated,opt=channels_last+bfloat16,"
     "clock=cuda_events",
     "timing: 1 warm-up batch, then measured on cuda in batches of up to 64 (ran 16 batches of 64; median and 95th "
     "percentile per batch, of the GPU time of its forward pass (CUDA events; copies overlap it)); speed options: "
     "channels-last memory layout, bfloat16 autocast; memory: peak CUDA memory allocated by PyTorch"),
    ("IoU>=0.5, score>=0.25, zero_division=0, micro", "IoU ≥ 0.5, score ≥ 0.25, 0 where undefined, micro"),
    ("resize=224,crop_pct=0.875,interp=bicubic", "resize 224, centre crop 87.5%, bicubic interpolation"),
])
def test_conventions_read_as_words(stored, words):
    assert short_convention(stored) == words


def test_metric_headers_carry_units():
    assert [metric_title(m) for m in ("psnr", "latency_ms_per_image", "peak_mem_mb", "num_params", "map50")] == \
        ["PSNR (dB)", "latency (ms/image)", "peak memory (MB)", "parameters", "mAP@0.5"]


def test_a_metric_timed_two_ways_gets_short_headers_with_the_sentence_in_the_tooltip():
    import pandas as pd

    from core.services.compare import columns_of, short_convention

    conv = "device={},batch={},p50/p95 per batch,warmup=1,mem=process_rss"
    frame = pd.DataFrame({"metric": ["latency_ms_per_image"] * 2, "higher_is_better": [False, False],
                          "convention": [conv.format("cpu", 8), conv.format("cuda", 32)]})
    headers = sorted(c.header for c in columns_of(frame))
    assert headers == ["latency (ms/image) ↓ [cpu, batch 8]", "latency (ms/image) ↓ [cuda, batch 32]"]
    assert short_convention(conv.format("cpu", 8)).startswith("timing: 1 warm-up pass, then measured on cpu")
