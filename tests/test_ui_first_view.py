"""The first view (issue 15): the launcher builds the chart a new Overview tab draws, and the Overview leaves the
image scoring to the background only once the browser has had time to draw it (a page that shows images starts it
at once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

pytestmark = pytest.mark.slow  # the whole app runs (AppTest) on the demo

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def demo_default(demo_root, tmp_path, monkeypatch):
    """A server whose default wandb directory is the demo's (no ./wandb, no $WANDB_DIR), with empty caches."""
    from ui import state

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setattr(state, "DEMO_ROOT", demo_root)
    st.cache_data.clear()
    st.cache_resource.clear()
    yield demo_root
    _release_waiting_jobs()
    st.cache_data.clear()
    st.cache_resource.clear()


def _release_waiting_jobs() -> None:
    """Start every background job that still waits out its delay (the worker thread is joined at exit)."""
    from ui import state

    _pool, started, lock = state._background()
    with lock:
        for job in started.values():
            job.go.set()
    for job in list(started.values()):
        job.future.result(timeout=300)


def test_the_launcher_builds_the_chart_a_new_overview_tab_draws(demo_default, monkeypatch):
    import analysis.reporting.vega as vega
    from ui import state

    location = state.warm_default_view()
    assert location is not None and Path(location).parent == demo_default / "wandb"
    calls: list[tuple[Any, ...]] = []
    real = vega.batch_curves_spec

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(vega, "batch_curves_spec", counting)
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    # one chart, drawn by Vega-Lite (a new tab draws it without loading plotly.js), built by the launcher's warm-up
    assert at.title[0].value == "Overview" and len(at.get("vega_lite_chart")) == 1 and not at.get("plotly_chart")
    assert calls == []


def test_the_overview_defers_image_scoring_and_batches_starts_it_at_once(demo_default, monkeypatch):
    from ui import state

    monkeypatch.setattr(state, "FIRST_VIEW_GRACE", 600.0)  # longer than the test: only Batches can start it
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception, at.exception
    _pool, started, lock = state._background()
    with lock:
        jobs = list(started.values())
    assert len(jobs) == 1 and not jobs[0].go.is_set()  # the Overview's job waits out its grace period
    assert not jobs[0].future.done()
    at.switch_page("pages/batches_page.py").run()
    assert not at.exception, at.exception
    assert jobs[0].go.is_set()
    jobs[0].future.result(timeout=300)  # scored now, not in ten minutes
    assert [i.value for i in at.run().info if "Scoring this run's images" in i.value] == []
    assert at.get("imgs") or at.get("image")  # the gallery is drawn from the scored images
