"""Background jobs as a user follows them in a real headless Chromium (Playwright): the launch notice follows
the job, a finished training job shows its model, scores and links."""
import re

from tests.browser_support import ROOT, browser, choose, page, server, settle  # noqa: F401  (fixtures)


def open_page(page, name: str) -> None:
    settle(page)
    page.get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name).wait_for()
    settle(page)


def set_number(page, label: str, value: str) -> None:
    box = page.get_by_role("spinbutton", name=label)
    box.fill(value)
    box.press("Enter")
    settle(page)


def test_a_failed_benchmark_is_not_left_announced_as_queued(page):
    open_page(page, "Benchmark")
    choose(page, "Dataset", "Synthetic shapes, one per image", search="shapes")
    set_number(page, "Images", "8")
    choose(page, "Models", "Small CNN (digits)", search="CNN")  # a digits model cannot name shapes: the job fails
    page.get_by_role("button", name="Launch benchmark").click()
    notice = page.get_by_text(re.compile(r"^Job #\d+ queued\. ")).first
    notice.wait_for()
    job = re.search(r"#(\d+)", notice.inner_text()).group(1)
    failed = page.get_by_text(f"Job #{job} failed: ")
    failed.wait_for(timeout=120_000)  # the page's poll, without any click
    assert "does not know the dataset's classes circle, square, triangle" in failed.inner_text()
    assert page.get_by_text(f"Job #{job} queued").count() == 0
    assert page.get_by_text("Traceback").count() == 0


def test_a_finished_training_job_shows_its_model_scores_and_test_run(page):
    open_page(page, "Fine-tune")
    choose(page, "Base model", "Small CNN (digits)", search="CNN")
    choose(page, "Training data", "synthetic shapes: fresh scenes")
    for label, value in (("Epochs", "1"), ("Max steps (0 = no limit)", "4"), ("Training images / patches", "16"),
                         ("Batch size", "8")):
        set_number(page, label, value)
    name = page.get_by_role("textbox", name="Name of the trained model (optional)")
    name.fill("browser-jobs-cnn")
    name.press("Enter")
    settle(page)
    page.get_by_role("button", name="Launch training").click()
    notice = page.get_by_text(re.compile(r"^Job #\d+ queued\. ")).first
    notice.wait_for()
    job = re.search(r"#(\d+)", notice.inner_text()).group(1)
    page.get_by_text(f"Job #{job} finished: model browser-jobs-cnn is registered.").wait_for(timeout=180_000)
    page.get_by_text("Trained model: browser-jobs-cnn").wait_for()
    scores = page.get_by_role("table").filter(has_text="held-out test score")
    assert "top-1 accuracy" in scores.inner_text() and "F1 (macro average)" in scores.inner_text()
    assert re.search(r"top-1 accuracy\s+\d+\.\d %", scores.inner_text())
    page.screenshot(path=str(ROOT / "test-artifacts" / "finetune_job_result_panel.png"), full_page=True)
    compare = page.get_by_role("link", name=f"Compare job #{job} with other training jobs")
    assert compare.get_attribute("href").endswith(f"compare?view=jobs&jobs={job}")
    test_run = page.get_by_role("link", name=re.compile(r"^Test run #\d+$"))
    run = re.search(r"#(\d+)", test_run.inner_text()).group(1)
    test_run.click()
    page.get_by_text(f"Run #{run} · browser-jobs-cnn").filter(visible=True).first.wait_for()
    assert page.get_by_text("Traceback").count() == 0
