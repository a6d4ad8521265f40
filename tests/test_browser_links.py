"""Links as a user opens them in Chromium: a deep link as a fresh server's first request, and link text that
must stay plain text."""
import re

import pytest

from ui.text import JOINER
from tests.browser_support import (browser, click_until, page, server, seed_store, settle,  # noqa: F401  (fixtures)
                                   streamlit_server)

NAV = ["Playground", "Benchmark", "Fine-tune", "Models", "Results", "Compare", "Leaderboard"]


@pytest.mark.parametrize("path", ["/compare?view=cost&task=restoration", "/results"])
def test_a_deep_link_as_the_first_request_gets_the_apps_navigation(browser, tmp_path, path):
    """After a restart, the first URL the server sees may be a shared link or a reconnecting tab."""
    with streamlit_server(tmp_path) as url:
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        pg.goto(url + path)
        heading = "Compare" if path.startswith("/compare") else "Results"
        pg.get_by_role("heading", name=heading).wait_for()
        settle(pg)
        nav = pg.get_by_test_id("stSidebarNav")
        nav.wait_for()
        pg.wait_for_timeout(500)
        assert [nav.get_by_role("link", name=t, exact=True).count() for t in NAV] == [1] * len(NAV)
        assert nav.get_by_role("link", name="app", exact=True).count() == 0  # not the raw file names
        assert nav.get_by_text("Analyse").count() == 1  # the app's own sections
        width = pg.get_by_test_id("stMainBlockContainer").bounding_box()["width"]
        assert width > 1000, width  # layout="wide" from app.py, not the narrow default
        pg.close()


def test_link_text_is_shown_as_plain_text_never_as_markdown(page, server):
    """A link can put any text in the app's own warning box; it must not become bold text or a live link."""
    url, data_dir = server
    seed_store(data_dir)
    bait = "**Session expired** [log in again](https://evil.example/login) :red[now] $x^2$ www.evil.example :smile: :material/home: a@b.org"
    from urllib.parse import quote

    page.goto(f"{url}/compare?view=metrics&task={quote(bait)}")
    alert = page.get_by_test_id("stAlert").filter(has_text="Session expired")
    alert.first.wait_for()
    assert bait in alert.first.inner_text().replace(JOINER, "")  # every character as typed (and invisible joiners)
    assert alert.first.locator("a").count() == 0 and alert.first.locator("strong").count() == 0
    assert alert.first.locator(".katex").count() == 0
    assert page.locator('a[href*="evil.example"]').count() == 0


def test_the_tab_icon_is_served_by_the_app_itself(page, server):
    """Offline (a classroom behind a firewall) the icon must still load: no font or CDN server involved."""
    url, _ = server
    icons = page.locator("link[rel*='icon']")
    icons.first.wait_for(state="attached")
    hrefs = [icons.nth(i).get_attribute("href") for i in range(icons.count())]
    assert hrefs and all(h.startswith(("/", "data:", url)) for h in hrefs), hrefs
    response = page.request.get(hrefs[-1] if hrefs[-1].startswith("http") else url + hrefs[-1])
    assert response.ok and response.headers["content-type"].startswith("image/")


def test_uploaders_say_the_real_limit(page):
    limit = page.get_by_text("per file", exact=False).first
    limit.wait_for()
    assert limit.inner_text().startswith("25MB per file")
    assert page.get_by_text("200MB").count() == 0


def test_switching_compare_views_in_the_browser_raises_no_link_warning(page, server):
    url, data_dir = server
    seed_store(data_dir)
    page.goto(f"{url}/compare?view=metrics&task=restoration")
    page.get_by_role("heading", name="Compare").wait_for()
    settle(page)
    for view in ("Quality vs cost", "Images", "Per class, PR, confusion", "Metrics per model"):
        box = page.get_by_role("combobox", name="View")
        box.click()
        page.get_by_role("option", name=view).click()
        settle(page)
        assert page.get_by_test_id("stAlert").filter(has_text="in this link").count() == 0, view
    assert "view=metrics" in page.url


def test_error_map_draws_zero_error_white(page, server):
    url, _ = server
    page.get_by_text("Denoise", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Restore").click()
    page.get_by_text("Quality against the clean image").wait_for()
    page.locator(".js-plotly-plot").last.wait_for()
    settle(page)
    scale = page.evaluate("""() => { const plots = [...document.querySelectorAll('.js-plotly-plot')];
        const heat = plots.map(p => p._fullData && p._fullData[0]).find(d => d && d.type === 'heatmap');
        return heat && {first: heat.colorscale[0][1], last: heat.colorscale[heat.colorscale.length - 1][1],
                        tick: heat.colorbar.ticktext[0]}; }""")
    assert scale == {"first": "#ffffff", "last": "#67000d", "tick": "0 (exact)"}


def test_the_operating_point_follows_the_slider_and_the_link_keeps_it(page, server):
    """A detection run explored in Chromium: moving the score slider recomputes precision and recall and writes
    the point into the URL; the two denoisers of the seeded store get their paired comparison."""
    import os
    import subprocess
    import sys

    from tests.browser_support import ROOT

    url, data_dir = server
    seed_store(data_dir)
    env = {**os.environ, "IMGLAB_DATA_DIR": str(data_dir), "IMGLAB_DEVICE": "cpu"}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "core", "bench", "--model", "fasterrcnn_tiny_shapes", "--dataset",
                    "shapes-detect", "--set", "count=24", "--json"], cwd=ROOT, env=env, check=True, capture_output=True,
                   timeout=300)
    page.goto(f"{url}/compare?view=operating&task=detection&iou=0.5&score=0.9")
    page.get_by_text("PR curve at IoU 0.50").filter(visible=True).first.wait_for()
    settle(page)

    def shown(label: str) -> float:
        metric = page.get_by_test_id("stMetric").filter(has_text=label).first
        return float(metric.get_by_test_id("stMetricValue").inner_text())

    high = (shown("precision"), shown("recall"))
    thumb = page.get_by_role("slider", name="Score threshold (detections below it are dropped)")
    thumb.focus()
    for _ in range(60):
        page.keyboard.press("ArrowLeft")  # 0.01 a step
    page.wait_for_url("**score=0.3*")
    settle(page)
    low = (shown("precision"), shown("recall"))
    assert low[1] >= high[1] and low != high, (high, low)  # a lower threshold keeps more detections
    assert "iou=0.5" in page.url and "view=operating" in page.url

    page.goto(f"{url}/compare?view=metrics&task=restoration&spread=psnr")
    page.get_by_text("Paired differences: is the gap real?").wait_for()
    settle(page)
    assert page.get_by_text(" − ", exact=False).filter(has_text="on PSNR (dB)").count() >= 1


def test_a_camera_photo_is_answered_by_every_model_side_by_side(page, server):
    """Chromium's fake camera (a moving test pattern) takes the photo; the denoisers answer it side by side."""
    url, _ = server
    page.goto(url + "/arena?view=side")
    page.get_by_role("heading", name="Arena").wait_for()
    settle(page)
    # the camera's stream must be playing before a shot can be taken (a click before that is ignored)
    page.wait_for_function("() => { const v = document.querySelector('video'); return v && v.readyState >= 2; }",
                           timeout=60_000)
    click_until(page, page.get_by_role("button", name="Take Photo"), page.get_by_role("button", name="Clear photo"))
    page.get_by_text("what the models received").wait_for(timeout=120_000)
    settle(page)
    captions = page.get_by_text(re.compile(r"^\d+ ms · PSNR [\d.]+ dB, SSIM [\d.]+"))
    assert captions.count() == 4, page.content()[-3000:]  # the four denoisers with weights, by default
    assert page.get_by_text("Traceback").count() == 0
