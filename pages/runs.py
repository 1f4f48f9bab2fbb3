"""Legacy route `/runs` on a freshly started server: runs app.py, which routes to the real page (see ui/routing.py)."""

from ui.routing import run_app

run_app()
