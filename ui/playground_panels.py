"""One panel per Playground task: inputs, a run button, and the outputs kept across reruns."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core import services
from core.data.builtin import builtin_image, sample_label, sample_order
from core.tasks import classification, detection, restoration, segmentation
from core.wording import count
from ui.identity import current_user
from ui.state import guarded
from ui.text import plain
from ui.widgets import application_notes, decode_uploads, image_inputs, image_upload_mb, model_picker, result_header


def _run(key: str, fn, *args, **kwargs) -> bool:
    """Run and keep the result; on an error the previous result is dropped, so it never sits under the
    message as if it were the answer to this run."""
    with st.spinner("Running…"):
        result = guarded(fn, *args, owner=current_user().name, **kwargs)
    if result is None:
        st.session_state.pop(key, None)
        return False
    st.session_state[key] = result
    return True


@st.cache_data(max_entries=64, show_spinner="Computing Grad-CAM…")
def _grad_cam(device: str, model: str, weights_sha: str | None, image_sha: str, class_index: int,
              allow_random: bool, _engine, _pixels: np.ndarray) -> np.ndarray:
    """Grad-CAM cached by what it depends on (model, its weights, the image, the class), so changing top-k or
    the batch size re-renders for free. The engine and pixels are identified by `device` and `image_sha` (the
    SHA-256 of the decoded upload's bytes, or of a sample photo's pixels)."""
    return services.explain(_engine, model, _pixels, class_index, allow_random=allow_random,
                            expected_weights=weights_sha)


def _image_run(key: str, label: str, fn, engine, model: str, images: list, **kwargs) -> None:
    """A run button over the chosen images; the result and the pixels it was computed on are kept in
    session state under `<key>_result` / `<key>_pixels` so widgets can re-render them."""
    if not st.button(label, type="primary", key=f"{key}_run"):
        return
    if not images:
        st.info("Upload an image or pick a sample photo first.")
        return
    if _run(f"{key}_result", fn, engine, model, images, **kwargs):
        st.session_state[f"{key}_pixels"] = [img.pixels for img in images]
        st.session_state[f"{key}_shas"] = [img.sha256 for img in images]  # identify the pixels without rehashing


def classification_panel(engine) -> None:
    info, allow_random = model_picker("classification", "cls")
    images = image_inputs("cls")
    c1, c2 = st.columns(2)
    top_k = c1.slider("Top-k", 1, 10, 5, key="cls_topk")
    batch = c2.number_input("Batch size", 1, 64, 8, key="cls_batch")
    _image_run("cls", "Classify", services.classify, engine, info.name, images, allow_random=allow_random,
               top_k=top_k, batch_size=int(batch))
    result = st.session_state.get("cls_result")
    if result is None:
        return
    result_header(result)
    cfg = result.data_config
    size = cfg.get("input_size") or ()
    st.caption(f"Stored as run #{result.run_id} (see Results). Preprocessing: resized to "
               f"{'×'.join(str(v) for v in size[-2:])} px, centre crop {cfg.get('crop_pct', 1):.0%} "
               f"({plain(cfg.get('interpolation', ''))} interpolation).")
    show_cam = st.toggle("Show Grad-CAM", key="cls_cam")
    for i, (pred, img, sha) in enumerate(zip(result.predictions, st.session_state["cls_pixels"],
                                             st.session_state["cls_shas"])):
        left, right = st.columns([1, 2])
        left.image(img, caption=plain(pred.name), width="stretch")
        if show_cam:
            cam = guarded(_grad_cam, str(engine.device), result.model, result.weights.sha256, sha,
                          pred.top[0].index, not result.weights.trained, engine, img)
            if cam is not None:
                left.image(cam, caption=f"Grad-CAM for '{plain(pred.top[0].label)}'", width="stretch")
        right.plotly_chart(classification.topk_figure(pred.top, f"Top-{len(pred.top)}: {pred.top[0].label}"),
                           key=f"topk_{i}")


def detection_panel(engine) -> None:
    info, allow_random = model_picker("detection", "det")
    images = image_inputs("det")
    _image_run("det", "Detect", services.detect, engine, info.name, images, allow_random=allow_random)
    result = st.session_state.get("det_result")
    if result is None:
        return
    result_header(result)
    threshold = st.slider("Score threshold", 0.05, 1.0, 0.5, 0.05, key="det_threshold",
                          help="Re-filters the stored detections without running the model again.")
    st.caption(f"Stored as run #{result.run_id} at threshold {result.score_threshold}.")
    for name, img, dets in zip(result.names, st.session_state["det_pixels"], result.above(threshold)):
        left, right = st.columns([2, 1])
        left.image(detection.draw(img, dets), caption=f"{plain(name)}: {count(len(dets), 'detection')}", width="stretch")
        right.dataframe([{"class": d.name, "score": round(d.score, 3), "box": [round(v) for v in d.box]} for d in dets],
                        hide_index=True)


def segmentation_panel(engine) -> None:
    kind = st.radio("Kind", ["semantic", "instance"], horizontal=True, key="seg_kind")
    info, allow_random = model_picker("segmentation", f"seg_{kind}", operation=kind)
    images = image_inputs("seg")
    threshold = st.slider("Instance score threshold", 0.05, 1.0, 0.5, 0.05, key="seg_threshold") if kind == "instance" else 0.5
    _image_run("seg", "Segment", services.segment, engine, info.name, images, allow_random=allow_random,
               score_threshold=threshold)
    result = st.session_state.get("seg_result")
    if result is None:
        return
    result_header(result)
    st.caption(f"Stored as run #{result.run_id}.")
    for item in result.images:
        left, right = st.columns([2, 1])
        left.image(item.overlay, caption=plain(item.name), width="stretch")
        if result.operation == "semantic":
            right.dataframe(segmentation.legend_rows(item.areas), hide_index=True,
                            column_config={"color": st.column_config.TextColumn("colour (hex)")})
        else:
            right.dataframe([{"instance": i + 1, "class": d.name, "score": round(d.score, 3)}
                             for i, d in enumerate(item.instances)], hide_index=True)


def restoration_panel(engine, operation: str) -> None:
    source = st.radio("Clean image", ["Sample image", "Upload"], horizontal=True, key="res_source")
    if source == "Sample image":
        options = sample_order()
        name = st.selectbox("Sample", options, index=options.index("astronaut"), key="res_sample", format_func=sample_label)
        application_notes([name])
        clean, kind = builtin_image(name), "builtin"
    else:
        from core.data.decode import UPLOAD_EXTENSIONS

        file = st.file_uploader("Clean image", type=UPLOAD_EXTENSIONS, key="res_file", max_upload_size=image_upload_mb())
        decoded = decode_uploads([file] if file else [])
        clean, kind = (decoded[0] if decoded else None), "upload"
    c1, c2, c3 = st.columns(3)
    sigma, seed, scale, blur = 0.0, 0, 2, 2.0
    if operation == "denoise":
        sigma = c1.slider("Noise σ (0-255 scale)", 0, 100, 25, key="res_sigma")
        seed = c2.number_input("Noise seed", 0, 2**31 - 1, 0, key="res_seed")
    elif operation == "deblur":
        blur = c1.slider("Blur σ (px)", 0.5, 5.0, 2.0, 0.5, key="res_blur")
        sigma = c2.slider("Added noise σ", 0, 20, 1, key="res_blur_noise")
    else:
        scale = c1.segmented_control("Scale", [2, 3, 4], default=2, key="res_scale", required=True)
    max_side = c3.slider("Working size (long side, px)", 64, 1024, 512, step=32, key="res_side")
    infos = [i for i in services.list_model_infos("restoration", operation)
             if operation != "super-resolution" or i.scale == scale]
    default = [i for i in infos if i.weights_status != "missing"]
    chosen = st.multiselect("Methods", infos, default=default, format_func=lambda i: i.label,
                            key=f"res_methods_{operation}_{scale}")
    allow_random = False
    if any(i.weights_status == "missing" for i in chosen):
        allow_random = st.checkbox("Run methods without weights with random weights (**untrained**)", key="res_random")
    if st.button("Restore", type="primary", key="res_run"):
        if clean is None:
            st.info("Upload a clean image first.")
        else:
            _run("res_result", services.restore, engine, clean.pixels, source_name=clean.name,
                 source_hash=clean.sha256, source_kind=kind, operation=operation,
                 methods=[i.name for i in chosen], sigma=float(sigma), scale=int(scale), seed=int(seed),
                 blur_sigma=float(blur), max_side=int(max_side), allow_random=allow_random)
    result = st.session_state.get("res_result")
    if result is None or result.operation != operation:
        return
    rows = []
    if result.degraded_psnr is not None:
        rows.append({"method": "degraded input", "psnr": result.degraded_psnr, "ssim": result.degraded_ssim,
                     "latency_ms": None, "run": None, "is_input": True})
    rows += [{"method": m.title + ("" if m.trained else " (untrained)"), "psnr": m.psnr, "ssim": m.ssim,
              "weights": m.weights, "latency_ms": m.stats.total_ms, "run": m.run_id, "is_input": False,
              "note": m.note}
             for m in result.methods]
    hidden = {"is_input"} | (set() if any(m.note for m in result.methods) else {"note"})  # note: FFDNet's noise level
    st.subheader("Quality against the clean image")
    ids = [m.run_id for m in result.methods]
    stored = f"Stored as run #{ids[0]}" if len(ids) == 1 else f"Stored as runs #{min(ids)} to #{max(ids)}"
    st.caption(f"{stored}, one per method (see Results). PSNR/SSIM convention: {plain(result.convention)} "
               "(SSIM: Gaussian window 11, σ 1.5).")
    st.dataframe([{k: v for k, v in r.items() if k not in hidden} for r in rows], hide_index=True,
                 column_config={"psnr": st.column_config.NumberColumn("PSNR (dB)", format="%.2f"),
                                "ssim": st.column_config.NumberColumn("SSIM", format="%.4f"),
                                "latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.1f"),
                                "run": st.column_config.NumberColumn("Run #"),
                                "weights": st.column_config.TextColumn("Weights"),
                                "note": st.column_config.TextColumn("Noise level used")})
    st.plotly_chart(restoration.quality_figure(rows), key="res_quality")

    st.subheader("Before / after")
    by_title = {m.title: m for m in result.methods}
    method = by_title[st.selectbox("Method", list(by_title), key="res_view")]
    before = restoration.same_size(result.degraded, method.output)  # super-resolution: the input enlarged (nearest)
    split = st.slider("Split (left: input, right: output)", 0, 100, 50, key="res_split")
    st.image(restoration.before_after(before, method.output, split / 100), width="stretch",
             caption=f"input | {plain(method.title)}: PSNR {method.psnr:.2f} dB, SSIM {method.ssim:.4f}"
                     + (f", {plain(method.note)}" if method.note else ""))
    cols = st.columns(3)
    cols[0].image(result.target, caption="clean", width="stretch")
    cols[1].image(result.degraded, caption="input", width="stretch")
    cols[2].image(method.output, caption=plain(method.title), width="stretch")
    st.plotly_chart(restoration.error_figure(restoration.error_map(method.output, result.target),
                                             f"|{method.title} − clean|"), key="res_error", theme=None)


def generation_panel(engine) -> None:
    info, allow_random = model_picker("generation", "gen")
    c1, c2, c3 = st.columns(3)
    samples = c1.slider("Samples", 1, 64, 16, key="gen_samples")
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed")
    label = None
    if info.num_classes:
        label = c3.selectbox("Label", list(range(info.num_classes)), key="gen_label")
    if st.button("Generate", type="primary", key="gen_run"):
        _run("gen_result", services.generate, engine, info.name, samples=samples, seed=int(seed), label=label,
             allow_random=allow_random)
    result = st.session_state.get("gen_result")
    if result is None:
        return
    result_header(result)
    caption = f"{result.samples} samples, seed {result.seed}" + (f", label {result.label}" if result.label is not None else "")
    st.image(result.grid, caption=caption, width=min(640, result.grid.shape[1] * 3))
    st.caption(f"Stored as run #{result.run_id}.")
