"""The dashboard's pages, one `<name>_page.py` file each, run by app.py's `st.navigation`: read widgets -> call
`ui/` (tables, cached figures, session state) -> draw.

The other files here (`batches.py`, `data-quality.py`, `reports.py`, `monitor.py`) are legacy routes, one per page
URL: on a freshly started server Streamlit routes the first script run by the file names in `pages/`, and each of
these only runs app.py, whose navigation then draws the real page with the sidebar (see ui/routing.py; proven by
tests/e2e/test_deep_links.py). The page files' names end in `_page` so that they never match a URL themselves.
"""
