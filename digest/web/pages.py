"""Rendering the app's pages (Jinja2, autoescaped, bokmål) and the one error type every route may raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

# Every page carries a token in its URL: no referrer may leak it to the next site, no cache may keep the page.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
}


class PageError(Exception):
    """Ends a request with a plain page: status, heading and a few sentences (and maybe one link)."""

    def __init__(self, status: int, heading: str, *paragraphs: str, link: tuple[str, str] | None = None) -> None:
        super().__init__(heading)
        self.status = status
        self.heading = heading
        self.paragraphs = paragraphs
        self.link = link


def render_page(request: Request, template: str, *, heading: str, status: int = 200, **values: Any) -> HTMLResponse:
    state = request.app.state.digest
    organisation = next(iter(state.settings.digests.values())).contact.organisation
    html = _env.get_template(template).render(
        **{"errors": {}, **values}, heading=heading, site_title=state.site_title, organisation=organisation)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, error: PageError) -> HTMLResponse:
    link_url, link_text = error.link or ("", "")
    return render_page(request, "message.html", heading=error.heading, status=error.status,
                       paragraphs=error.paragraphs, link_url=link_url, link_text=link_text)


def invalid_link() -> PageError:
    # One answer for altered, truncated and foreign tokens: nothing tells a prober how close it came.
    return PageError(400, "Lenken er ugyldig",
                     "Lenken er ikke gyldig. Kopier hele lenken fra e-posten, eller bruk lenken nederst i "
                     "den siste e-posten du fikk.")


def unknown_subscriber() -> PageError:
    return PageError(404, "Fant ikke abonnementet",
                     "Vi har ikke noe abonnement som hører til denne lenken. Du får ingen e-poster fra oss.")
