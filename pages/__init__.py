"""The dashboard's pages, one file each, run by app.py's `st.navigation`: read widgets -> call the library -> draw.

File names end in `_page` so that none equals its URL path (`/batches`): Streamlit's legacy `pages/` routing
would otherwise run a page file alone on a freshly started server.
"""
