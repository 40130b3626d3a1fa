"""The editors' desk under /redaksjon: log in, the digests, the next edition with checks and changes, test sends.

Every page needs an editor's session (else: the login page); every form carries the session's CSRF token (else:
refused). The preview is the application layer's own stored edition — the real sources, the real templates — so
what the desk shows is what subscribers will get.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from digest.app.sending import send_test
from digest.changes import Changes
from digest.config import DigestConfig, FilesSource, Settings
from digest.consent import mask
from digest.cron import next_run as scheduled_next_run
from digest.editors import authenticate
from digest.errors import DigestError
from digest.render import template_folders
from digest.subscribers import normalise_address
from digest.web.auth import (
    CSRF_FIELD,
    DESK,
    LOGIN,
    LoginRequired,
    csrf_token,
    current_editor,
    log_in,
    log_out,
    login_url,
    require_csrf,
    require_editor,
    safe_next,
)
from digest.web.context import client_ip, web_state
from digest.web.draft_view import draft_view, waiting_drafts
from digest.web.livereload import ChangeCounter
from digest.web.pages import PageError, render_page
from digest.web.preview import (
    DeskPreview,
    LinkResults,
    PreviewCache,
    build_preview,
    link_checker,
    with_base_target,
)
from digest.web.ratelimit import RateLimiter
from digest.web.sends import BackgroundSends

router = APIRouter()
log = logging.getLogger("digest.web")

STATIC = Path(__file__).resolve().parent / "static"
MAX_TEST_ADDRESSES = 10
LOGIN_ATTEMPTS_PER_WINDOW = 10
LOGIN_WINDOW_SECONDS = 600

# The desk's own pages load one script and frame the e-mail (served from this app); nothing else.
DESK_CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; frame-src 'self'; img-src 'self'; "
            "style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# The framed e-mail: its images (from anywhere, as in a mail client), its inline styles, no scripts, no forms.
EMAIL_CSP = ("default-src 'none'; img-src * data:; style-src 'unsafe-inline'; form-action 'none'; "
             "base-uri 'none'; frame-ancestors 'self'")


@dataclass
class DeskState:
    """What the desk keeps besides the app's WebState: the change counter, built previews, the link check's
    results, the login limit, the sends it started and each draft's last refresh (by revision)."""

    changes: ChangeCounter
    links: LinkResults | None = None
    previews: PreviewCache = field(default_factory=PreviewCache)
    sends: BackgroundSends = field(default_factory=BackgroundSends)
    refreshes: dict[tuple[str, str], tuple[int, Changes]] = field(default_factory=dict)
    login_limit: RateLimiter = field(
        default_factory=lambda: RateLimiter(LOGIN_ATTEMPTS_PER_WINDOW, LOGIN_WINDOW_SECONDS))


def desk_for(settings: Settings, *, link_timeout: float | None) -> DeskState:
    links = None if link_timeout is None else LinkResults(link_checker(settings, timeout=link_timeout))
    return DeskState(changes=ChangeCounter(watched_paths(settings)), links=links)


def watched_paths(settings: Settings) -> list[Path]:
    """The e-mail templates and every digest's content folder: what an editor edits by hand."""
    paths = template_folders(settings)
    for digest in settings.digests.values():
        paths += [settings.resolve(source.path) for source in digest.sources if isinstance(source, FilesSource)]
    return paths


def desk_state(request: Request) -> DeskState:
    return request.app.state.desk  # type: ignore[no-any-return]


def _page(request: Request, template: str, *, heading: str, status: int = 200, **values: Any) -> HTMLResponse:
    response = render_page(request, template, heading=heading, status=status, desk=DESK,
                           editor=current_editor(request), csrf=csrf_token(request), csrf_field=CSRF_FIELD,
                           **values)
    response.headers["Content-Security-Policy"] = DESK_CSP
    return response


def _digest(request: Request, name: str) -> DigestConfig:
    digest = web_state(request).settings.digests.get(name)
    if digest is None:
        raise PageError(404, "Fant ikke nyhetsbrevet", f"Det finnes ikke noe nyhetsbrev som heter «{name}».",
                        link=(DESK, "Til redaksjonen"))
    return digest


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PageError(400, "Ugyldig dato", "Skriv datoen som ÅÅÅÅ-MM-DD, for eksempel 2019-07-01.",
                        link=(DESK, "Til redaksjonen")) from None


def next_run(digest: DigestConfig, now: datetime) -> datetime | None:
    """When the scheduler sends the digest next, if the scheduler (digest/scheduler.py) is part of this install."""
    try:
        return scheduled_next_run(digest, now)
    except (ValueError, DigestError):
        return None


PING_ANSWER = "kulturdigest"


def desk_url(settings: Settings, name: str, as_of: str | None = None) -> str:
    """The desk's preview page of a digest (optionally of the edition for a date)."""
    return f"{settings.public_url}{DESK}/{name}" + (f"?dato={as_of[:10]}" if as_of else "")


def desk_is_serving(settings: Settings, *, timeout: float = 1.5) -> bool:
    """Does `digest serve` answer at base_url (so the desk can show the preview)?"""
    import httpx

    try:
        response = httpx.get(f"{settings.public_url}{DESK}/ping", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text == PING_ANSWER


@router.get(DESK + "/ping")
def ping() -> Response:
    """How `digest preview --open` finds out that the desk is there; tells nothing else."""
    return Response(PING_ANSWER, media_type="text/plain")


# -- logging in and out ---------------------------------------------------------------------------------------------

@router.get(LOGIN, response_class=HTMLResponse)
def login_page(request: Request, neste: str = "") -> HTMLResponse:
    if current_editor(request):
        return RedirectResponse(safe_next(neste), status_code=303)  # type: ignore[return-value]
    return _page(request, "desk_login.html", heading="Logg inn i redaksjonen", next_path=safe_next(neste),
                 failed=False, name="")


@router.post(LOGIN, response_class=HTMLResponse)
def login(request: Request, navn: Annotated[str, Form()] = "", passord: Annotated[str, Form()] = "",
          neste: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    require_csrf(request, csrf)
    if not desk_state(request).login_limit.allow(client_ip(request)):
        raise PageError(429, "For mange forsøk", "Det er gjort mange innloggingsforsøk fra denne adressen. Vent "
                        "noen minutter og prøv igjen.")
    name = authenticate(web_state(request).store, navn, passord)
    if name is None:
        log.warning("desk: failed login from %s", client_ip(request))
        return _page(request, "desk_login.html", heading="Logg inn i redaksjonen", status=401,
                     next_path=safe_next(neste), failed=True, name=navn)
    log_in(request, name)
    log.info("desk: %s logged in", name)
    return RedirectResponse(safe_next(neste), status_code=303)


@router.post(f"{DESK}/logg-ut")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    require_editor(request)
    require_csrf(request, csrf)
    log_out(request)
    return RedirectResponse(LOGIN, status_code=303)


# -- the desk -------------------------------------------------------------------------------------------------------

@router.get(DESK, response_class=HTMLResponse)
def digests_page(request: Request) -> HTMLResponse:
    require_editor(request)
    state = web_state(request)
    now = state.now()
    rows = []
    for name, digest in state.settings.digests.items():
        last = state.store.last_edition(name)
        rows.append({"name": name, "digest": digest, "next_run": next_run(digest, now),
                     "last": last.edition if last else None, "drafts": waiting_drafts(state.store, name),
                     "archive_url": f"/arkiv/{name}/{last.edition.key}" if last else None})
    return _page(request, "desk_digests.html", heading="Redaksjonen", rows=rows)


def _preview(request: Request, name: str, day: date | None, *, need_links: bool) -> DeskPreview:
    state = web_state(request)
    desk = desk_state(request)
    version = desk.changes.version
    cached = desk.previews.get(name, day, version, need_links=need_links)
    if cached is not None:
        return cached
    with desk.previews.lock(name, day):
        cached = desk.previews.get(name, day, version, need_links=need_links)
        if cached is not None:
            return cached
        preview = build_preview(state.settings, state.store, name, as_of=day, now=state.now(), secret=state.secret,
                                version=version, links=desk.links if need_links else None)
        if need_links or desk.previews.get(name, day, version, need_links=False) is None:
            desk.previews.put(preview)
        return preview


@router.get(DESK + "/{name}", response_class=HTMLResponse)
def preview_page(request: Request, name: str, dato: Annotated[str | None, Query()] = None) -> HTMLResponse:
    require_editor(request)
    digest = _digest(request, name)
    day = _day(dato)
    preview = _preview(request, name, day, need_links=True)
    query = f"?dato={day.isoformat()}" if day else ""
    flash = request.session.pop("flash", None)
    edition = preview.edition
    heading = (f"{digest.title}: utgaven {edition.key}" if edition is not None and edition.sent
               else f"{digest.title}: neste utgave")
    desk = desk_state(request)
    draft = None if preview.prepared is None or edition is None else draft_view(
        preview.prepared, digest, job=desk.sends.get(name, edition.key),
        refresh=desk.refreshes.get((name, edition.key)))
    return _page(request, "desk_preview.html", heading=heading, name=name, digest=digest,
                 preview=preview, day=day, query=query, flash=flash, version=preview.version,
                 verdicts=[check.verdict for check in preview.checks], draft=draft)


@router.get(DESK + "/{name}/epost", response_class=HTMLResponse)
def preview_email(request: Request, name: str, dato: Annotated[str | None, Query()] = None) -> HTMLResponse:
    require_editor(request)
    _digest(request, name)
    preview = _preview(request, name, _day(dato), need_links=False)
    if preview.html is None:
        raise PageError(404, "Ingen e-post å vise", preview.error or "Utgaven har ingen artikler.")
    response = HTMLResponse(with_base_target(preview.html))
    response.headers["Content-Security-Policy"] = EMAIL_CSP
    return response


@router.get(DESK + "/{name}/endringer")
def change_count(request: Request, name: str) -> JSONResponse:
    """The live-reload counter the open preview polls; it grows when a template or content file changes."""
    require_editor(request)
    _digest(request, name)
    return JSONResponse({"versjon": desk_state(request).changes.version})


_ADDRESS_SPLIT = re.compile(r"[\s,;]+")


@router.post(DESK + "/{name}/test")
def send_test_copies(request: Request, name: str, adresser: Annotated[str, Form()] = "",
                     dato: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    editor = require_editor(request)
    require_csrf(request, csrf)
    _digest(request, name)
    day = _day(dato)
    state = web_state(request)
    back = f"{DESK}/{name}" + (f"?dato={day.isoformat()}" if day else "")
    wanted = [part for part in _ADDRESS_SPLIT.split(adresser) if part]
    addresses: list[str] = []
    for part in wanted:
        try:
            addresses.append(normalise_address(part))
        except ValueError:
            request.session["flash"] = {"ok": False, "text": f"«{part}» er ikke en gyldig e-postadresse. "
                                                           "Ingen test ble sendt."}
            return RedirectResponse(back, status_code=303)
    addresses = list(dict.fromkeys(addresses))
    if not addresses or len(addresses) > MAX_TEST_ADDRESSES:
        request.session["flash"] = {"ok": False, "text": f"Skriv inn fra én til {MAX_TEST_ADDRESSES} "
                                                       "e-postadresser. Ingen test ble sendt."}
        return RedirectResponse(back, status_code=303)
    sent: list[str] = []
    try:
        for address in addresses:
            report = send_test(state.settings, state.store, state.transport(), name, as_of=day, now=state.now(),
                               to=address, made_by=editor)
            if not report.sent:
                raise DigestError(report.problems[0] if report.problems else "nothing to send")
            sent.append(address)
    except DigestError as err:
        log.warning("desk: test copy of %s by %s failed: %s", name, editor, err)
        done = f" Sendt til {', '.join(sent)} før feilen." if sent else ""
        request.session["flash"] = {"ok": False, "text": f"Testen ble ikke sendt: {err}.{done}"}
        return RedirectResponse(back, status_code=303)
    log.info("desk: %s sent a test copy of %s to %s", editor, name, ", ".join(mask(a) for a in sent))
    request.session["flash"] = {"ok": True, "text": f"Testen er sendt til {', '.join(sent)} (merket [TEST], ikke "
                                                  "registrert som utsendelse)."}
    return RedirectResponse(back, status_code=303)


@router.get(DESK + "/static/{filename}")
def static_file(filename: str) -> Response:
    # One script, served from the package; no login needed (it holds nothing), nothing outside STATIC.
    if filename != "desk.js":
        raise PageError(404, "Fant ikke siden", "Siden finnes ikke.")
    return Response((STATIC / filename).read_text(encoding="utf-8"), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


def login_redirect(request: Request, error: LoginRequired) -> Response:
    """Without a session: GET goes to the login page (and back afterwards); a POST gets the login page, 401."""
    if request.method == "GET":
        return RedirectResponse(login_url(error.next_path), status_code=303)
    return _page(request, "desk_login.html", heading="Logg inn i redaksjonen", status=401,
                 next_path=safe_next(error.next_path), failed=False, name="")
