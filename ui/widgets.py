"""Widgets shared by the Playground's task panels."""
from __future__ import annotations

import streamlit as st

from core import services
from core.data.builtin import APPLICATIONS, builtin_image, sample_label, sample_order
from core.data.decode import UPLOAD_EXTENSIONS, decode_batch
from core.config import get_settings
from core.errors import LabError
from ui.text import plain


def image_upload_mb() -> int:
    """The per-image upload limit the decoder enforces, so the uploader states the real one (not the server's)."""
    return max(1, get_settings().max_upload_bytes // 2**20)


def decode_uploads(files) -> list:
    """Decode the uploads: count and total pixels are checked from headers before any file is decoded (a drop
    over budget is refused whole); a bad file is reported and skipped, the good ones still run."""
    try:
        images, errors = decode_batch([(f.getvalue(), f.name) for f in files or []])
    except LabError as exc:
        st.error(plain(exc))
        return []
    for message in errors:
        st.error(plain(message))
    return images


def image_inputs(key: str, label: str = "Images", default_samples: tuple[str, ...] = ()) -> list:
    files = st.file_uploader(label, type=UPLOAD_EXTENSIONS, accept_multiple_files=True, key=f"{key}_files",
                             max_upload_size=image_upload_mb())
    samples = st.multiselect("…or sample photos (scikit-image)", sample_order(), default=list(default_samples),
                             key=f"{key}_samples", format_func=sample_label)
    application_notes(samples)
    return decode_uploads(files) + [builtin_image(n) for n in samples]


def application_notes(names=None) -> None:
    """One plain line per application sample among `names` (all of them when None): what it shows."""
    for name in APPLICATIONS if names is None else names:
        if name in APPLICATIONS:
            st.caption(plain(f"{name}: {APPLICATIONS[name].note}"))


def weights_notice(info, key: str) -> bool:
    """Where the weights come from; when missing, offer random init explicitly. Returns allow_random."""
    if info.weights_status == "missing":
        st.warning(f"Pretrained weights are not available: {plain(info.weights_detail)}")
        return st.checkbox("Run with random weights (**untrained** — outputs are meaningless)", key=f"{key}_random")
    st.caption(f"Weights: {plain(info.weights_detail)}")
    return False


def model_picker(task: str, key: str, operation: str | None = None):
    """Select box over the registered models of a task; returns (ModelInfo, allow_random)."""
    infos = services.list_model_infos(task, operation)
    info = st.selectbox("Model", infos, format_func=lambda i: i.label, key=f"{key}_model")
    st.caption(plain(info.description))
    return info, weights_notice(info, key)


def untrained_banner(weights) -> None:
    if not weights.trained:
        st.error("Untrained model (random weights): these outputs are not meaningful.")


def result_header(result) -> None:
    """Model name, the untrained warning when it applies, and the run's timing."""
    st.subheader(plain(result.model))
    untrained_banner(result.weights)
    if result.weights.trained:
        st.caption(f"Weights: {plain(result.weights.label)}.")
    timing_row(result.stats)


def timing_row(stats) -> None:
    cols = st.columns(5)
    cols[0].metric("Total", f"{stats.total_ms:.1f} ms")
    cols[1].metric("Per image", f"{stats.ms_per_item:.1f} ms")
    cols[2].metric("Throughput", f"{stats.throughput:.1f} img/s")
    mem = "GPU peak" if stats.mem_kind == "cuda_max_allocated" else "Peak RSS"
    cols[3].metric(mem, f"{stats.peak_mem_mb:.0f} MB")
    cols[4].metric(f"Device ({stats.dtype})", stats.device)
