"""The desk's subscribers (`/redaksjon/abonnenter`): search by part of an address or name, filter by status and
digest, a page at a time (keyset on the address: a page deep in a long list costs what the first does), and a page
per subscriber with the consent history, the editions sent and their outcome, and bounces. Read only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.dates import format_datetime
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from digest.consent import ACTIVE, BOUNCED, COMPLAINED, UNSUBSCRIBED
from digest.web.auth import DESK, require_editor
from digest.web.context import web_state
from digest.web.desk import _page
from digest.web.pages import PageError

router = APIRouter()

SUBSCRIBERS = DESK + "/abonnenter"
PAGE_SIZE = 50

STATUS_WORDS = {ACTIVE: "aktiv", UNSUBSCRIBED: "avmeldt", BOUNCED: "avvist (bounce)", COMPLAINED: "klaget"}
DELIVERY_WORDS = {"sent": "sendt", "deferred": "utsatt", "failed": "feilet", "queued": "i kø", "sending": "sendes"}
EVENT_WORDS = {"consent": "samtykke", "withdrawal": "trakk samtykket"}


def _when(value: str | datetime | None, request: Request) -> str:
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    digest = next(iter(web_state(request).settings.digests.values()))
    return format_datetime(moment, "d. MMM y 'kl.' HH:mm", tzinfo=digest.timezone, locale=digest.locale)


def _digest_names(request: Request, names: list[str] | tuple[str, ...] | None) -> str:
    digests = web_state(request).settings.digests
    if names is None or "*" in names:
        return "alle"
    if not names:
        return "ingen"
    return ", ".join(digests[name].title if name in digests else name for name in names)


@router.get(SUBSCRIBERS, response_class=HTMLResponse)
def subscribers_page(request: Request, q: Annotated[str, Query(max_length=200)] = "",
                     status: Annotated[str, Query()] = "", nyhetsbrev: Annotated[str, Query()] = "",
                     etter: Annotated[str | None, Query(max_length=320)] = None) -> HTMLResponse:
    require_editor(request)
    state = web_state(request)
    chosen_status = status if status in STATUS_WORDS else ""
    chosen_digest = nyhetsbrev if nyhetsbrev in state.settings.digests else ""
    found = state.store.search_subscribers(status=chosen_status or None, digest=chosen_digest or None,
                                           search=q or None, after=etter or None, limit=PAGE_SIZE + 1)
    more = len(found) > PAGE_SIZE
    people = found[:PAGE_SIZE]
    filters = {"q": q, "status": chosen_status, "nyhetsbrev": chosen_digest}
    next_url = None
    if more:
        next_url = SUBSCRIBERS + "?" + urlencode({**{k: v for k, v in filters.items() if v},
                                                  "etter": people[-1].email})
    first_url = SUBSCRIBERS + ("?" + urlencode({k: v for k, v in filters.items() if v})
                               if any(filters.values()) else "")
    rows: list[dict[str, Any]] = [
        {"id": person.id, "email": person.email, "name": person.name,
         "status": STATUS_WORDS.get(person.status, person.status),
         "digests": _digest_names(request, person.digests), "created": _when(person.created_at, request)}
        for person in people]
    return _page(request, "desk_subscribers.html", heading="Abonnenter", rows=rows, filters=filters,
                 statuses=STATUS_WORDS, digests=state.settings.digests, next_url=next_url,
                 first_url=first_url if etter else None, page_size=PAGE_SIZE)


@router.get(SUBSCRIBERS + "/{subscriber_id}", response_class=HTMLResponse)
def subscriber_page(request: Request, subscriber_id: int) -> HTMLResponse:
    require_editor(request)
    store = web_state(request).store
    person = store.subscriber(subscriber_id)
    if person is None:
        raise PageError(404, "Fant ikke abonnenten", "Det finnes ingen abonnent med dette nummeret (kanskje er "
                        "adressen slettet).", link=(SUBSCRIBERS, "Til abonnentene"))
    record = store.export_address(person.email)
    about = record["subscriber"] or {}
    consents = [{"at": _when(item["at"], request), "event": EVENT_WORDS.get(item["event"], item["event"]),
                 "digests": _digest_names(request, item["digests"]), "source": item["source"]}
                for item in reversed(record.get("consents", []))]
    deliveries = [{"edition": item["edition"], "digest": item["digest"],
                   "state": DELIVERY_WORDS.get(item["state"], item["state"]),
                   "detail": " ".join(str(part) for part in (item["code"], item["reason"]) if part),
                   "at": _when(item["updated_at"], request)}
                  for item in reversed(record.get("deliveries", []))]
    return _page(request, "desk_subscriber.html", heading=person.email, person=person, about=about,
                 status_word=STATUS_WORDS.get(person.status, person.status),
                 digests=_digest_names(request, about.get("digests")), created=_when(about.get("created_at"), request),
                 consents=consents, deliveries=deliveries, bounces=record.get("bounces"),
                 bounce_at=_when((record.get("bounces") or {}).get("last_at"), request), subscribers=SUBSCRIBERS)
