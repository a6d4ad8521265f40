"""The application samples (medical, microscopy, astronomy): one note each, a restoration set, and both pickers."""
import numpy as np

from core.data.builtin import APPLICATIONS, BUILTIN_IMAGES, sample_label, sample_order
from tests.conftest import shown
from tests.test_pages import _wait_job_done, app  # noqa: F401  (fixture)

NAMES = ["retina", "immunohistochemistry", "hubble_deep_field"]


def test_each_application_image_has_a_field_and_a_one_line_note():
    assert list(APPLICATIONS) == NAMES and set(NAMES) <= set(BUILTIN_IMAGES)
    assert [a.field for a in APPLICATIONS.values()] == ["medical", "microscopy", "astronomy"]
    for app_ in APPLICATIONS.values():
        assert 40 < len(app_.note) < 200 and "\n" not in app_.note
    assert "retina" in APPLICATIONS["retina"].note and "DAB" in APPLICATIONS["immunohistochemistry"].note
    assert "Hubble" in APPLICATIONS["hubble_deep_field"].note
    assert sample_order()[-3:] == NAMES and sorted(sample_order()) == sorted(BUILTIN_IMAGES)  # grouped at the end
    assert sample_label("retina") == "retina (application: medical)" and sample_label("camera") == "camera"


def test_application_photos_as_restoration_sets(settings_env):
    from core.data.datasets import load_dataset

    ds = load_dataset({"name": "photos-denoise", "photos": "applications", "max_side": 64})
    assert [s.key for s in ds.samples] == NAMES
    assert ds.title == "application photos (medical, microscopy, astronomy), noise σ 25, 3 images, long side 64 px"
    for s in ds.samples:  # the clean image is the target, the noisy one the input
        assert s.target.dtype == np.uint8 and s.target.shape == s.image.shape and max(s.target.shape[:2]) == 64
        assert not np.array_equal(s.image, s.target)
    sr = load_dataset({"name": "photos-sr", "photos": "applications", "limit": 2, "max_side": 64, "scale": 2})
    assert [s.key for s in sr.samples] == NAMES[:2] and sr.title.endswith("×2, 2 images, long side 64 px")
    assert all(s.image.shape[0] * 2 == s.target.shape[0] for s in sr.samples)
    deblur = load_dataset({"name": "photos-deblur", "photos": "applications", "max_side": 32})
    assert len(deblur.samples) == 3 and deblur.title.startswith("application photos")


def test_playground_shows_the_note_of_a_chosen_application_image(app):
    notes = [shown(c.value) for c in app.caption]
    assert not any(APPLICATIONS["retina"].note in n for n in notes)
    assert "retina (application: medical)" in app.multiselect(key="cls_samples").options
    app.multiselect(key="cls_samples").set_value(["chelsea", "retina"]).run()
    notes = [shown(c.value) for c in app.caption]
    assert not app.exception and f"retina: {APPLICATIONS['retina'].note}" in notes
    assert not any(APPLICATIONS["hubble_deep_field"].note in n for n in notes)
    app.segmented_control(key="task").set_value("Denoise").run()
    app.selectbox(key="res_sample").set_value("hubble_deep_field").run()
    notes = [shown(c.value) for c in app.caption]
    assert not app.exception and f"hubble_deep_field: {APPLICATIONS['hubble_deep_field'].note}" in notes


def test_benchmark_page_offers_the_applications_set_in_words(app):
    from core import services

    app.switch_page("pages/benchmark.py").run()
    app.selectbox(key="bm_task").select("restoration").run()
    photos = app.selectbox(key="bm_photos-denoise_photos")
    assert list(photos.options) == ["scikit-image photos (10)", "scikit-learn photos (2)",
                                    "applications: medical, microscopy, astronomy (3)"]
    photos.set_value("applications").run()
    assert not app.exception
    notes = [shown(c.value) for c in app.caption]
    assert all(f"{n}: {APPLICATIONS[n].note}" in notes for n in NAMES)
    app.multiselect(key="bm_models").set_value(["gaussian_denoise"]).run()
    app.number_input(key="bm_photos-denoise_max_side").set_value(32).run()
    app.button(key="bm_launch").click().run()
    assert not app.exception and not app.error
    job = services.list_jobs("benchmark")[0]
    assert job.params["dataset"]["photos"] == "applications"
    assert _wait_job_done(job.id).status == "done"
