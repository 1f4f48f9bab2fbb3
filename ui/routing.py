"""Deep links on a freshly started server: hand Streamlit's legacy `pages/` routes to app.py.

With a `pages/` folder beside app.py, Streamlit (1.67) routes the first script run of a server process the legacy
way: it builds a navigation from the file names in `pages/` before app.py has called `st.navigation`. A deep link
such as `/batches` that matches no file name there makes the browser show a "Page not found" dialog (and run the
main page); one that matches would run that file alone, without the sidebar. So `pages/` holds one tiny file per
URL (`batches.py`, `data-quality.py`, ...) whose only job is `run_app()`: app.py then runs in the same script run,
its `st.navigation` takes over and routes the URL to the real page (`pages/batches_page.py`). Once app.py has called
`st.navigation` in the process, Streamlit never looks at `pages/` again.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["APP_SCRIPT", "run_app"]

APP_SCRIPT = Path(__file__).resolve().parents[1] / "app.py"


def run_app() -> None:
    """Execute app.py in the current script run, as Streamlit executes a page (fresh globals named __main__)."""
    code = compile(APP_SCRIPT.read_text(encoding="utf-8"), str(APP_SCRIPT), "exec")
    exec(code, {"__name__": "__main__", "__file__": str(APP_SCRIPT)})
