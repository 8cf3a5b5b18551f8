"""The text-behind-image page (``servers/static/index.html``): one static file, served at ``GET /``.

Vanilla HTML/CSS/JS with no build step and nothing fetched from elsewhere; it asks ``/healthz``
which server it is on and calls that server's own endpoint (gradio: its queue, FastAPI:
``/segment_b64``). Both adapters register the same route (gradio before ``launch()``, so that it
comes before Gradio's own ``/``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

PAGE = Path(__file__).parent / "static" / "index.html"


def add_page_route(app: FastAPI) -> None:
    html = PAGE.read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html)
