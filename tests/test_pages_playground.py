"""Playground rough edges, through AppTest as a user clicks: Grad-CAM cached, stale results, plain text,
limits stated, words and scales a student reads correctly."""
import json

import streamlit as st

from tests.test_pages import app, chart_specs  # noqa: F401  (fixture)


def test_grad_cam_is_computed_once_per_model_weights_image_and_class(app, monkeypatch):
    from core import services

    calls = []
    real = services.explain

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    st.cache_data.clear()
    monkeypatch.setattr(services, "explain", counting)
    app.multiselect(key="cls_samples").set_value(["chelsea"])
    app.button(key="cls_run").click().run()
    app.toggle(key="cls_cam").set_value(True).run()
    assert not app.exception and calls == ["efficientnet_lite0"]
    assert any(img.proto.imgs[0].caption == "Grad-CAM for 'tiger cat'" for img in app.get("image"))
    app.slider(key="cls_topk").set_value(3).run()  # widgets that do not change the explanation
    app.number_input(key="cls_batch").set_value(2).run()
    app.toggle(key="cls_cam").set_value(False).run()
    app.toggle(key="cls_cam").set_value(True).run()
    assert not app.exception and calls == ["efficientnet_lite0"]  # no recomputation
    app.multiselect(key="cls_samples").set_value(["coffee"])
    app.button(key="cls_run").click().run()  # another image: computed for it
    assert calls == ["efficientnet_lite0", "efficientnet_lite0"]


def test_an_error_does_not_leave_the_previous_result_under_it(app):
    app.multiselect(key="cls_samples").set_value(["chelsea"])
    app.button(key="cls_run").click().run()
    assert any("Top-5: tiger cat" == s["layout"]["title"]["text"] for s in chart_specs(app))
    options = app.selectbox(key="cls_model").options
    app.selectbox(key="cls_model").select_index(options.index("ResNet-18 — weights missing")).run()
    app.button(key="cls_run").click().run()
    assert not app.exception and any("ResNet" in e.value or "resnet18" in e.value for e in app.error)
    assert chart_specs(app) == []  # the cat's top-5 of the other model is gone
    assert not any("Stored as run" in c.value for c in app.caption)


def test_missing_weights_name_the_browser_fix_first_and_no_server_path(app):
    from core.config import get_settings

    options = app.selectbox(key="cls_model").options
    app.selectbox(key="cls_model").select_index(options.index("ResNet-18 — weights missing")).run()
    [warning] = [w.value for w in app.warning if "not available" in w.value]
    text = warning.replace("\\", "").replace("\u2060", "")
    assert text.index("Models page") < text.index("On the server")
    assert str(get_settings().data_dir) not in text and "/root" not in text and "/tmp" not in text


def test_uploaders_state_the_real_per_image_limit(app):
    [uploader] = app.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 25
    app.segmented_control(key="task").set_value("Denoise").run()
    app.radio(key="res_source").set_value("Upload").run()
    [uploader] = app.get("file_uploader")
    assert uploader.proto.max_upload_size_mb == 25


def test_error_maps_start_white_at_zero_with_a_labelled_scale(app):
    app.segmented_control(key="task").set_value("Denoise").run()
    app.slider(key="res_side").set_value(64).run()
    app.button(key="res_run").click().run()
    assert not app.exception
    [chart] = [c for c in app.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "heatmap"]
    heat = json.loads(chart.proto.spec)["data"][0]
    assert heat["colorscale"][0] == [0.0, "#ffffff"] and heat["zmin"] == 0
    assert heat["colorbar"]["ticktext"][0] == "0 (exact)" and "0-255" in heat["colorbar"]["title"]["text"]
    assert chart.proto.theme == ""  # Streamlit's theme would recolour it
