"""Playground: run a registered model on your images and see output, timing and where it was stored."""
import numpy as np
import streamlit as st

from core import services
from core.data.builtin import BUILTIN_IMAGES, builtin_image
from core.data.decode import UPLOAD_EXTENSIONS, decode_image
from core.errors import LabError
from core.tasks import classification, restoration
from ui.state import device_picker, guarded

st.title("Playground")
engine = device_picker()
task = st.segmented_control("Task", ["Classification", "Denoise", "Super-resolution"], default="Classification",
                            key="task", required=True)


def decode_uploads(files) -> list:
    """Decode every upload; a bad file is reported and skipped, the good ones still run."""
    images = []
    for f in files or []:
        try:
            images.append(decode_image(f.getvalue(), f.name))
        except LabError as exc:
            st.error(str(exc))
    return images


def timing_row(stats) -> None:
    cols = st.columns(5)
    cols[0].metric("Total", f"{stats.total_ms:.1f} ms")
    cols[1].metric("Per image", f"{stats.ms_per_item:.1f} ms")
    cols[2].metric("Throughput", f"{stats.throughput:.1f} img/s")
    mem = "GPU peak" if stats.mem_kind == "cuda_max_allocated" else "Peak RSS"
    cols[3].metric(mem, f"{stats.peak_mem_mb:.0f} MB")
    cols[4].metric("Device", f"{stats.device} · {stats.dtype}")


def weights_notice(info) -> bool:
    """Show where weights come from; when missing, offer random init explicitly. Returns allow_random."""
    if info.weights_status == "missing":
        st.warning(f"Pretrained weights are not available: {info.weights_detail}")
        return st.checkbox("Run with random weights (**untrained** — predictions are meaningless)", key="allow_random")
    st.caption(f"Weights: {info.weights_detail}")
    return False


def classification_ui() -> None:
    infos = services.list_model_infos("classification")
    info = st.selectbox("Model", infos, format_func=lambda i: i.label, key="cls_model")
    st.caption(info.description)
    allow_random = weights_notice(info)
    files = st.file_uploader("Images", type=UPLOAD_EXTENSIONS, accept_multiple_files=True, key="cls_files")
    samples = st.multiselect("…or sample photos (scikit-image)", BUILTIN_IMAGES, key="cls_samples")
    c1, c2 = st.columns(2)
    top_k = c1.slider("Top-k", 1, 10, 5, key="cls_topk")
    batch = c2.number_input("Batch size", 1, 64, 8, key="cls_batch")
    if st.button("Classify", type="primary", key="cls_run"):
        images = decode_uploads(files) + [builtin_image(n) for n in samples]
        if not images:
            st.info("Upload an image or pick a sample photo first.")
        elif engine is not None:
            with st.spinner(f"Running {info.name}…"):
                result = guarded(services.classify, engine, info.name, images, allow_random=allow_random,
                                 top_k=top_k, batch_size=int(batch))
            if result is not None:
                st.session_state["cls_result"] = (result, [img.pixels for img in images])
    if "cls_result" in st.session_state:
        result, pixels = st.session_state["cls_result"]
        st.subheader(f"{result.model}")
        if not result.weights.trained:
            st.error("Untrained model (random weights): these predictions are not meaningful.")
        timing_row(result.stats)
        st.caption(f"Stored as run #{result.run_id} (see Results). Preprocessing: resize/crop "
                   f"{result.data_config.get('input_size')} crop_pct={result.data_config.get('crop_pct')} "
                   f"{result.data_config.get('interpolation')}.")
        for i, (pred, img) in enumerate(zip(result.predictions, pixels)):
            left, right = st.columns([1, 2])
            left.image(img, caption=pred.name, width="stretch")
            right.plotly_chart(classification.topk_figure(pred.top, f"Top-{len(pred.top)}: {pred.top[0].label}"),
                               key=f"topk_{i}")


def restoration_ui(operation: str) -> None:
    source = st.radio("Clean image", ["Sample image", "Upload"], horizontal=True, key="res_source")
    if source == "Sample image":
        name = st.selectbox("Sample", BUILTIN_IMAGES, index=BUILTIN_IMAGES.index("astronaut"), key="res_sample")
        clean, kind = builtin_image(name), "builtin"
    else:
        file = st.file_uploader("Clean image", type=UPLOAD_EXTENSIONS, key="res_file")
        decoded = decode_uploads([file] if file else [])
        clean, kind = (decoded[0] if decoded else None), "upload"
    c1, c2, c3 = st.columns(3)
    if operation == "denoise":
        sigma = c1.slider("Noise σ (0-255 scale)", 0, 100, 25, key="res_sigma")
        seed = c2.number_input("Noise seed", 0, 2**31 - 1, 0, key="res_seed")
        scale = 2
    else:
        scale = c1.segmented_control("Scale", [2, 3, 4], default=2, key="res_scale", required=True)
        sigma, seed = 0, 0
    max_side = c3.slider("Working size (long side, px)", 64, 1024, 512, step=32, key="res_side")
    infos = [i for i in services.list_model_infos("restoration", operation) if operation == "denoise" or i.scale == scale]
    chosen = st.multiselect("Methods", infos, default=infos, format_func=lambda i: i.label, key=f"res_methods_{operation}_{scale}")
    if st.button("Restore", type="primary", key="res_run"):
        if clean is None:
            st.info("Upload a clean image first.")
        elif engine is not None:
            with st.spinner("Restoring…"):
                result = guarded(services.restore, engine, clean.pixels, source_name=clean.name,
                                 source_hash=clean.sha256, source_kind=kind, operation=operation,
                                 methods=[i.name for i in chosen], sigma=float(sigma), scale=int(scale),
                                 seed=int(seed), max_side=int(max_side))
            if result is not None:
                st.session_state["res_result"] = result
    result = st.session_state.get("res_result")
    if result is None or result.operation != operation:
        return
    rows = []
    if result.degraded_psnr is not None:
        rows.append({"method": "noisy input", "psnr": result.degraded_psnr, "ssim": result.degraded_ssim,
                     "latency_ms": None, "run": None, "is_input": True})
    rows += [{"method": m.title, "psnr": m.psnr, "ssim": m.ssim, "latency_ms": m.stats.total_ms, "run": m.run_id,
              "is_input": False} for m in result.methods]
    st.subheader("Quality against the clean image")
    st.caption(f"PSNR/SSIM convention: {result.convention} (SSIM: Gaussian window 11, σ 1.5).")
    st.dataframe([{k: v for k, v in r.items() if k != "is_input"} for r in rows], hide_index=True,
                 column_config={"psnr": st.column_config.NumberColumn("PSNR (dB)", format="%.2f"),
                                "ssim": st.column_config.NumberColumn("SSIM", format="%.4f"),
                                "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.1f"),
                                "run": st.column_config.NumberColumn("Run #")})
    st.plotly_chart(restoration.quality_figure(rows), key="res_quality")

    st.subheader("Before / after")
    by_title = {m.title: m for m in result.methods}
    pick = st.selectbox("Method", list(by_title), key="res_view")
    method = by_title[pick]
    before = result.degraded
    if before.shape != method.output.shape:  # super-resolution: show the low-res input enlarged (nearest)
        fy, fx = method.output.shape[0] // before.shape[0], method.output.shape[1] // before.shape[1]
        before = np.kron(before, np.ones((fy, fx, 1), dtype=np.uint8))
    split = st.slider("Split (left: input, right: output)", 0, 100, 50, key="res_split")
    st.image(restoration.before_after(before, method.output, split / 100), width="stretch",
             caption=f"input | {method.title}: PSNR {method.psnr:.2f} dB, SSIM {method.ssim:.4f}")
    cols = st.columns(3)
    cols[0].image(result.target, caption="clean", width="stretch")
    cols[1].image(result.degraded, caption="input", width="stretch")
    cols[2].image(method.output, caption=method.title, width="stretch")
    st.plotly_chart(restoration.error_figure(restoration.error_map(method.output, result.target),
                                             f"|{method.title} − clean|"), key="res_error")


if task == "Classification":
    classification_ui()
elif task == "Denoise":
    restoration_ui("denoise")
else:
    restoration_ui("super-resolution")
