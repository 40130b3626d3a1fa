"""The desk's hands on a stored edition: drop an article, move one, write the introduction, refresh from the
sources, approve and send (in the background), hold back.

Each is a POST form with the session's CSRF token (without it: refused, nothing changed) that calls the application
layer (digest.app) once, words its answer for the editor and goes back to the edition page. The rules (who may
change what when, approval again after a change) live there, not here.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from digest.app.drafts import (
    approve_edition,
    drop_article,
    hold_edition,
    move_article,
    refresh_draft,
    set_introduction,
)
from digest.app.editions import key_day, prepare
from digest.errors import DigestError, DraftError
from digest.web.auth import DESK, require_csrf, require_editor
from digest.web.context import web_state
from digest.web.desk import _day, _digest, desk_state
from digest.web.draft_view import outcome_words, plural, refusal, sending_words
from digest.web.sends import SendJob

router = APIRouter()
log = logging.getLogger("digest.web")

EDITION = DESK + "/{name}/utgave/{key}"


def _back(name: str, dato: str) -> RedirectResponse:
    day = _day(dato)
    return RedirectResponse(f"{DESK}/{name}" + (f"?dato={day.isoformat()}" if day else ""), status_code=303)


def _flash(request: Request, text: str, *, ok: bool = True) -> None:
    request.session["flash"] = {"ok": ok, "text": text}


def _editor(request: Request, name: str, csrf: str) -> str:
    """The editor behind a form post, once the session, the CSRF token and the digest are in order."""
    editor = require_editor(request)
    require_csrf(request, csrf)
    _digest(request, name)
    return editor


def _changed(request: Request, name: str) -> None:
    # The page and its frames must show the draft as it now stands, not a preview built before the change.
    desk_state(request).previews.forget(name)


@router.post(EDITION + "/fjern")
def drop(request: Request, name: str, key: str, url: Annotated[str, Form()] = "",
         dato: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    editor = _editor(request, name, csrf)
    state = web_state(request)
    try:
        draft = drop_article(state.settings, state.store, name, key, url, editor=editor, now=state.now())
    except DraftError as err:
        _flash(request, refusal(err), ok=False)
        return _back(name, dato)
    _changed(request, name)
    log.info("desk: %s dropped an article from %s %s", editor, name, key)
    left = plural(len(draft.edition.articles), "artikkel", "artikler")
    _flash(request, f"Artikkelen er fjernet. Utgaven har nå {left}.")
    return _back(name, dato)


@router.post(EDITION + "/flytt")
def move(request: Request, name: str, key: str, url: Annotated[str, Form()] = "",
         retning: Annotated[str, Form()] = "", dato: Annotated[str, Form()] = "",
         csrf: Annotated[str, Form()] = "") -> Response:
    editor = _editor(request, name, csrf)
    if retning not in ("opp", "ned"):
        _flash(request, "Velg om artikkelen skal flyttes opp eller ned.", ok=False)
        return _back(name, dato)
    state = web_state(request)
    try:
        draft = move_article(state.settings, state.store, name, key, url, -1 if retning == "opp" else 1,
                             editor=editor, now=state.now())
    except DraftError as err:
        _flash(request, refusal(err), ok=False)
        return _back(name, dato)
    _changed(request, name)
    place = next((index + 1 for index, article in enumerate(draft.edition.articles) if article.url == url), None)
    _flash(request, f"Artikkelen er flyttet {retning}" + (f" til plass {place}." if place else "."))
    return _back(name, dato)


@router.post(EDITION + "/innledning")
def introduction(request: Request, name: str, key: str, innledning: Annotated[str, Form()] = "",
                 dato: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "") -> Response:
    editor = _editor(request, name, csrf)
    state = web_state(request)
    try:
        draft = set_introduction(state.settings, state.store, name, key, innledning, editor=editor, now=state.now())
    except DraftError as err:
        _flash(request, refusal(err), ok=False)
        return _back(name, dato)
    _changed(request, name)
    _flash(request, "Innledningen er lagret." if draft.edition.introduction else "Utgaven har ingen innledning.")
    return _back(name, dato)


@router.post(EDITION + "/hent-igjen")
def refresh(request: Request, name: str, key: str, dato: Annotated[str, Form()] = "",
            csrf: Annotated[str, Form()] = "") -> Response:
    editor = _editor(request, name, csrf)
    state = web_state(request)
    try:
        refreshed = refresh_draft(state.settings, state.store, name, key, editor=editor, now=state.now())
    except DraftError as err:
        _flash(request, refusal(err), ok=False)
        return _back(name, dato)
    except DigestError as err:  # every source failed: the draft stays as it was
        _flash(request, f"Utkastet ble ikke hentet på nytt, og det er som før: {err}.", ok=False)
        return _back(name, dato)
    _changed(request, name)
    desk_state(request).refreshes[(name, key)] = (refreshed.draft.revision, refreshed.changes)
    changes = refreshed.changes
    if changes.nothing:
        text = "Utkastet er hentet på nytt fra kildene. Ingenting var endret."
    else:
        text = (f"Utkastet er hentet på nytt fra kildene: {len(changes.new)} nye, {len(changes.edited)} endret, "
                f"{len(changes.dropped)} borte. Se endringene under.")
    if _digest(request, name).approval is not None:
        text += " Utgaven må godkjennes på nytt."
    _flash(request, text)
    return _back(name, dato)


@router.post(EDITION + "/godkjenn")
def approve(request: Request, name: str, key: str, dato: Annotated[str, Form()] = "",
            csrf: Annotated[str, Form()] = "") -> Response:
    editor = _editor(request, name, csrf)
    state = web_state(request)
    now = state.now()

    desk = desk_state(request)
    job = SendJob(digest=name, key=key, editor=editor, started=now)

    def send() -> tuple[bool, str]:
        try:
            outcome = approve_edition(state.settings, state.store, state.transport(), name, key, editor=editor,
                                      now=now, progress=desk.sends.progress(job))
        except DraftError as err:
            return False, refusal(err)
        except DigestError as err:
            return False, f"Utgaven ble ikke sendt: {err}."
        finally:
            desk.previews.forget(name)
        return outcome_words(outcome)

    # Sending to a long list takes minutes: the request returns at once and the page shows "sendes" meanwhile.
    started = desk.sends.start(job, send)
    if not started:
        _flash(request, "Utgaven sendes allerede.", ok=False)
        return _back(name, dato)
    _changed(request, name)
    log.info("desk: %s approved %s %s; sending", editor, name, key)
    _flash(request, "Utgaven er godkjent og sendes nå.")
    return _back(name, dato)


@router.post(EDITION + "/hold")
def hold(request: Request, name: str, key: str, dato: Annotated[str, Form()] = "",
         csrf: Annotated[str, Form()] = "") -> Response:
    editor = _editor(request, name, csrf)
    state = web_state(request)
    try:
        hold_edition(state.settings, state.store, name, key, editor=editor, now=state.now())
    except DraftError as err:
        _flash(request, refusal(err), ok=False)
        return _back(name, dato)
    except DigestError as err:
        _flash(request, f"Utgaven ble ikke holdt tilbake: {err}.", ok=False)
        return _back(name, dato)
    _changed(request, name)
    _flash(request, "Utgaven er holdt tilbake og går ikke ut av seg selv. «Godkjenn og send» sender den.")
    return _back(name, dato)


@router.get(EDITION + "/sendes")
def sending(request: Request, name: str, key: str) -> JSONResponse:
    """Whether the desk is still sending the edition; the open page asks, and reloads when it is done."""
    require_editor(request)
    _digest(request, name)
    job = desk_state(request).sends.get(name, key)
    running = job is not None and not job.done
    day = key_day(key)
    if not running and day is not None:
        # Another process (`digest send`, the scheduler) may be the one sending it.
        state = web_state(request)
        running = prepare(state.settings, state.store, name, as_of=day, now=state.now()).state == "sending"
    answer: dict[str, object] = {"sendes": running}
    if running and job is not None and job.total:
        answer["tekst"] = sending_words(job)
    return JSONResponse(answer)
