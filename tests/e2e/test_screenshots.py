"""Every page of the dashboard at the two widths people use (a 1024 px laptop window, a 1440 px screen): no
exception, nothing wider than the window, and a full-page screenshot in artifacts/screenshots/ to look at."""

from __future__ import annotations

from tests.e2e.st_helpers import collect_errors, full_app_screenshot, run_tracker, wait_idle, wait_run_finished

# name -> URL path (Overview is the default page, at /)
PAGES = {
    "overview": "",
    "batches": "batches",
    "data-quality": "data-quality",
    "reports": "reports",
    "compare": "compare",
    "runs": "runs",
    "monitor": "monitor",
}
WIDTHS = [1024, 1440]

# scrollWidth of the main area and of the whole document against the window: a cut-off table or message shows up as
# content wider than the viewport (Streamlit's data grids scroll inside their own frame and do not count)
OVERFLOW = """() => {
  const main = document.querySelector('[data-testid=stMain]');
  const right = main.getBoundingClientRect().right;
  const wide = [...main.querySelectorAll('*')]
    .filter(e => e.getBoundingClientRect().right > right + 1)
    .map(e => (e.dataset.testid || e.tagName) + ': ' + (e.innerText || '').slice(0, 60));
  return {window: window.innerWidth, doc: document.documentElement.scrollWidth,
          main: main.scrollWidth, mainClient: main.clientWidth, wide: wide.slice(0, 8)};
}"""

# labels of metrics and widgets in the main area whose text is cut (an ellipsis: the text is wider than its box)
CUT_LABELS = """() => [...document.querySelectorAll(
    '[data-testid=stMain] [data-testid=stMetricLabel], [data-testid=stMain] [data-testid=stWidgetLabel]')]
  .filter(l => [l, ...l.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
  .map(l => l.innerText.trim())
  .filter(t => t)"""


def test_every_page_fits_the_window_at_1024_and_1440_px(chromium_browser, server_url, artifacts_dir):
    """Each page is loaded once at 1024 px, checked, then widened to 1440 px (Streamlit lays out again in the
    browser, no rerun) and checked again."""
    from playwright.sync_api import expect

    ctx = chromium_browser.new_context(base_url=server_url, viewport={"width": WIDTHS[0], "height": 900})
    ctx.set_default_timeout(90_000)
    try:
        page = ctx.new_page()
        errors = collect_errors(page)
        run_tracker(page)
        for name, path in PAGES.items():
            page.set_viewport_size({"width": WIDTHS[0], "height": 900})
            before = run_tracker(page).finished
            page.goto(f"{server_url}/{path}")
            wait_run_finished(page, before, timeout=120_000)
            # a page may rerun once more after its first run (Overview draws curves first, then the full analysis)
            expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=120_000)
            wait_idle(page, 120_000)
            expect(page.get_by_test_id("stException")).to_have_count(0)
            expect(page.get_by_test_id("stSidebarNav")).to_be_visible()
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(300)  # the browser's own re-layout
                size = page.evaluate(OVERFLOW)
                assert size["doc"] <= size["window"] + 1, f"{name} at {width}px: {size}"
                assert size["main"] <= size["mainClient"] + 1, f"{name} at {width}px: {size}"
                assert page.evaluate(CUT_LABELS) == [], f"{name} at {width}px: labels cut off"
                full_app_screenshot(page, artifacts_dir / f"{name}_{width}.png")
        assert errors == [], errors
    finally:
        ctx.close()
