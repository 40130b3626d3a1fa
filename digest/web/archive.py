"""The public archive: every sent edition at a permanent address, the "view in browser" link of each e-mail.

`/arkiv/{digest}/{edition}` is built from the articles stored when the edition was sent, rendered with today's
templates, without anything personal: no name, no address, no unsubscribe or preferences link (those are signed
for one subscriber). No login and no cookie.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from digest.errors import DigestError
from digest.render import nb_date, render
from digest.web.context import web_state
from digest.web.pages import PageError, render_page
from digest.web.preview import public_html

router = APIRouter()

ARCHIVE_CSP = ("default-src 'none'; img-src * data:; style-src 'unsafe-inline'; form-action 'none'; "
               "base-uri 'none'; frame-ancestors 'self'")
# Nothing personal or secret in these pages: a browser or proxy may keep them for a while.
CACHE = "public, max-age=300"


def _not_found() -> PageError:
    return PageError(404, "Fant ikke utgaven", "Denne utgaven finnes ikke i arkivet.")


@router.get("/arkiv/{name}", response_class=HTMLResponse)
def archive_list(request: Request, name: str) -> HTMLResponse:
    state = web_state(request)
    digest = state.settings.digests.get(name)
    if digest is None:
        raise _not_found()
    editions = [stored.edition for stored in state.store.sent_editions(name)]
    response = render_page(request, "archive_list.html", heading=f"{digest.title}: arkiv", name=name,
                           editions=[(edition.key, nb_date(edition.date, digest.locale), len(edition.articles))
                                     for edition in editions],
                           subscribe_url="/abonner")
    response.headers["Cache-Control"] = CACHE
    return response


@router.get("/arkiv/{name}/{key}", response_class=HTMLResponse)
def archived_edition(request: Request, name: str, key: str) -> HTMLResponse:
    state = web_state(request)
    digest = state.settings.digests.get(name)
    stored = state.store.find_edition(name, key) if digest is not None else None
    if digest is None or stored is None or not stored.edition.articles:
        raise _not_found()
    try:
        rendered = render(state.settings, digest, stored.edition)
    except DigestError:
        raise PageError(500, "Utgaven kan ikke vises",
                        "Utgaven kunne ikke lages akkurat nå. Prøv igjen senere.") from None
    response = HTMLResponse(public_html(rendered))
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    response.headers["Cache-Control"] = CACHE
    return response
