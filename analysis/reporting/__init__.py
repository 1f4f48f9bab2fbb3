"""The Report model and its Markdown / JSON / HTML renderings; plotly figures shared with the dashboard."""

__all__: list[str] = []
