"""The search page for people (`/ui`): German page shells rendered with Jinja2, plain JavaScript from /ui/static.

The pages hold no data and no key: their scripts call the /v1 API with the key the person enters once (kept in
the browser's sessionStorage, sent as `Authorization: Bearer`, never put in a URL), so the page can do exactly
what the key may do and the gate (gate.py) decides as for any client. The shells and static files are open
(gate.OPEN_PREFIXES); every /ui answer carries a strict Content-Security-Policy: scripts and styles only from
this origin, no inline code, no framing, so text from a document can never run, even if it slipped past the
scripts' escaping (they build the DOM with textContent and never parse data as HTML).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_PREFIX = "/ui"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
# path -> (template, the page's title, its script); the navigation lists them in this order
PAGES = {
    "": ("search.html", "Suche", "search.js"),
    "dokument": ("document.html", "Dokument", "document.js"),
    "quellen": ("sources.html", "Quellen", "sources.js"),
    "hochladen": ("upload.html", "Hochladen", "upload.js"),
    "kontext": ("context.html", "Kontext", "context.js"),
}
NAV = [("", "Suche"), ("kontext", "Kontext"), ("quellen", "Quellen"), ("hochladen", "Hochladen")]


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("pipelines.service").joinpath(name)))


class SecurityHeaders:
    """ASGI middleware: the CSP and its companions on every answer under /ui (pages, static files, 404s)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == UI_PREFIX or path.startswith(UI_PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, with_headers)


def install_ui(app: FastAPI) -> None:
    """Mount the page shells under /ui and their static files under /ui/static."""
    templates = Jinja2Templates(directory=str(_package_dir("templates")))  # autoescape on for .html
    app.mount(f"{UI_PREFIX}/static", StaticFiles(directory=str(_package_dir("static"))), name="ui-static")

    @app.get(UI_PREFIX, include_in_schema=False)
    async def ui_root() -> RedirectResponse:
        return RedirectResponse(f"{UI_PREFIX}/", status_code=308)

    def page(slug: str):
        template, title, script = PAGES[slug]

        async def render(request: Request) -> HTMLResponse:
            return templates.TemplateResponse(request, template, {
                "title": title, "script": script, "slug": slug, "nav": NAV, "prefix": UI_PREFIX})

        return render

    for slug in PAGES:
        app.add_api_route(f"{UI_PREFIX}/{slug}", page(slug), methods=["GET"], include_in_schema=False,
                          response_class=HTMLResponse, name=f"ui-{slug or 'search'}")
    app.add_middleware(SecurityHeaders)
