"""The public archive: every sent edition at a permanent address, the "view in browser" link of each e-mail, and
its Atom feed (`/arkiv/{digest}.atom`) for those who follow it in a feed reader.

`/arkiv/{digest}/{edition}` is built from the articles stored when the edition was sent (with the draft's subject
and introduction), rendered with today's templates, without anything personal: no name, no address, no unsubscribe
or preferences link, no "because you subscribe" (those belong to one subscriber). No login and no cookie.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from digest.app.archive import archived_edition, archived_editions
from digest.archive_feed import archive_url, atom_feed
from digest.errors import DigestError
from digest.render import feed_url, nb_date, render, view_url
from digest.web.context import web_state
from digest.web.pages import PageError, render_page
from digest.web.public import public_html

router = APIRouter()

ARCHIVE_CSP = ("default-src 'none'; img-src * data:; style-src 'unsafe-inline'; form-action 'none'; "
               "base-uri 'none'; frame-ancestors 'self'")
# Nothing personal or secret in these pages: a browser or proxy may keep them for a while.
CACHE = "public, max-age=300"


def _not_found() -> PageError:
    return PageError(404, "Fant ikke utgaven", "Denne utgaven finnes ikke i arkivet.")


# Before /arkiv/{name}: that pattern would take "kultur.atom" for a digest's name.
@router.get("/arkiv/{name}.atom")
def archive_feed(request: Request, name: str) -> Response:
    state = web_state(request)
    digest = state.settings.digests.get(name)
    if digest is None:
        raise _not_found()
    body = atom_feed(state.settings, digest, name, archived_editions(state.store, digest, name))
    return Response(body, media_type="application/atom+xml; charset=utf-8", headers={"Cache-Control": CACHE})


@router.get("/arkiv/{name}", response_class=HTMLResponse)
def archive_list(request: Request, name: str) -> HTMLResponse:
    state = web_state(request)
    digest = state.settings.digests.get(name)
    if digest is None:
        raise _not_found()
    editions = archived_editions(state.store, digest, name)
    response = render_page(request, "archive_list.html", heading=f"{digest.title}: arkiv", name=name,
                           editions=[(edition, nb_date(edition.date, digest.locale)) for edition in editions],
                           feed_url=f"/arkiv/{name}.atom", feed_title=f"{digest.title}: arkiv",
                           subscribe_url="/abonner")
    response.headers["Cache-Control"] = CACHE
    return response


@router.get("/arkiv/{name}/{key}", response_class=HTMLResponse)
def archived_edition_page(request: Request, name: str, key: str) -> HTMLResponse:
    state = web_state(request)
    digest = state.settings.digests.get(name)
    edition = archived_edition(state.store, digest, name, key) if digest is not None else None
    if digest is None or edition is None:
        raise _not_found()
    try:
        rendered = render(state.settings, digest, edition)
    except DigestError:
        raise PageError(500, "Utgaven kan ikke vises",
                        "Utgaven kunne ikke lages akkurat nå. Prøv igjen senere.") from None
    settings = state.settings
    html = public_html(rendered, page_url=view_url(settings, edition), title=digest.title,
                       organisation=digest.contact.organisation, archive_url=archive_url(settings, name),
                       feed_url=feed_url(settings, name), subscribe_url=f"{settings.public_url}/abonner")
    response = HTMLResponse(html)
    response.headers["Content-Security-Policy"] = ARCHIVE_CSP
    response.headers["Cache-Control"] = CACHE
    return response
