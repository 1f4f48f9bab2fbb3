"""Helpers shared by app.py and pages/.

Streamlit-side: `state` (session state and cached loaders), `charts` (cached figures and tables).
Plain Python, no Streamlit (unit-tested alone): `tables` (what the pages show, built from the analysis and the
scores), `config_edit` (the sidebar's threshold fields <-> config), `format` (escaping, numbers), `routing` (legacy
`pages/` routes handed to app.py).
"""
