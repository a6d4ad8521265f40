"""Results, Leaderboard and Compare as a new user reads them in Chromium: datasets and conventions in words,
headers with units, the model comparison on one dataset and one convention, tables named by what they compare."""
from tests.browser_support import browser, page, server, seed_store, settle  # noqa: F401  (fixtures)

TITLE = "skimage photos, noise σ 25, 2 images, long side 64 px"


def body(page) -> str:
    return page.locator("body").inner_text()


def test_results_leaderboard_and_compare_speak_in_words(page, server):
    url, data_dir = server
    seed_store(data_dir)

    page.goto(f"{url}/leaderboard?task=restoration")
    page.get_by_role("heading", name=f"restoration · {TITLE}").wait_for()
    settle(page)
    assert page.get_by_role("combobox", name="Dataset").input_value() == f"{TITLE} (2 runs)"
    page.get_by_text("PSNR (dB) ↑ — RGB, values 0-255, no border crop, mean of per-image values").wait_for()
    page.get_by_text("Timing: 1 warm-up batch, then measured on cpu", exact=False).wait_for()
    page.get_by_text("Ranked by PSNR (dB) ↑", exact=False).wait_for()
    text = body(page)
    assert "photos-denoise(" not in text and "mem=process_rss" not in text and "warmup" not in text

    page.goto(f"{url}/results")
    page.get_by_role("heading", name="Compare models").wait_for()
    settle(page)
    page.locator(".gtitle").filter(has_text=f"PSNR (dB) ↑ on {TITLE}").wait_for()
    title = page.locator(".gtitle").first.text_content()
    assert title.count("RGB, values 0-255") == 1  # the convention stated once
    page.get_by_text("not benchmark results", exact=False).filter(visible=True).first.wait_for()
    assert page.get_by_role("combobox", name="Metric").input_value() == "PSNR (dB) ↑"

    page.goto(f"{url}/compare?view=tables&table=method&task=restoration")
    page.get_by_role("heading", name="Reference tables: methods, per class, optimizers").wait_for()
    page.get_by_text("“Advanced Deep Learning Techniques for Image Processing and Analysis”", exact=False).wait_for()
    page.get_by_text("“Applications of Deep Learning in Image Analysis”", exact=False).wait_for()
    settle(page)
    assert "seeds" not in body(page).lower()
    assert page.get_by_text("Traceback").count() == 0
