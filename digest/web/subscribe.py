"""Sign-up with double opt-in: the form (/abonner), then the confirmation link from the e-mail (/bekreft/TOKEN).

Nothing is sent to an address until its owner follows the link and presses "Bekreft" (a POST, so a mail scanner that
fetches the link confirms nothing). A honeypot field and a per-IP rate limit keep bots out; the answer to a
submission is the same whether the address is new, pending or subscribed already, so the form reveals nobody.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse

from digest.consent import SignUp, mask
from digest.errors import DigestError
from digest.message import preferences_url
from digest.signup import consent_text, digest_titles, request_confirmation
from digest.tokens import make_preferences_token, read_confirmation_token
from digest.web.context import WebState, client_ip, web_state
from digest.web.forms import form_lists, read_address, read_choices
from digest.web.pages import PageError, render_page

router = APIRouter()
log = logging.getLogger("digest.web")

FORM_SOURCE = "web:/abonner"


def _form(request: Request, state: WebState, *, values: dict[str, object], errors: dict[str, str] | None = None,
          status: int = 200) -> HTMLResponse:
    chosen = values.get("nyhetsbrev") or list(state.settings.digests)
    return render_page(request, "subscribe.html", heading="Meld deg på nyhetsbrev", status=status,
                       values=values, consent=consent_text(state.settings, list(chosen)),  # type: ignore[arg-type]
                       **form_lists(state.settings), **({"errors": errors} if errors else {}))


@router.get("/abonner", response_class=HTMLResponse)
def subscribe_form(request: Request,
                   nyhetsbrev: Annotated[list[str], Query()] = []) -> HTMLResponse:  # noqa: B006 (FastAPI default)
    state = web_state(request)
    preselected = [d for d in nyhetsbrev if d in state.settings.digests]
    if not preselected and len(state.settings.digests) == 1:
        preselected = list(state.settings.digests)
    return _form(request, state, values={"epost": "", "navn": "", "kommune": "", "nyhetsbrev": preselected,
                                         "tema": []})


@router.post("/abonner", response_class=HTMLResponse)
def subscribe(
    request: Request,
    epost: Annotated[str, Form()] = "",
    navn: Annotated[str, Form()] = "",
    kommune: Annotated[str, Form()] = "",
    nyhetsbrev: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    tema: Annotated[list[str], Form()] = [],  # noqa: B006
    nettside: Annotated[str, Form()] = "",
) -> HTMLResponse:
    state = web_state(request)
    thanks = render_page(
        request, "message.html", heading="Sjekk e-posten din",
        paragraphs=["Vi har sendt deg en e-post med en lenke. Åpne lenken og trykk «Bekreft» for å få "
                    "nyhetsbrevet. Lenken virker i 14 dager.",
                    "Finner du ikke e-posten, se etter i søppelpost-mappen."],
        link_url="", link_text="")
    if nettside.strip():
        return thanks  # the honeypot was filled: a bot; it learns nothing
    if not state.signup_limit.allow(client_ip(request)):
        raise PageError(429, "For mange forsøk", "Det er sendt mange påmeldinger fra denne adressen. "
                        "Vent litt og prøv igjen.")
    address, address_error = read_address(epost)
    choices = read_choices(state.settings, name=navn, municipality=kommune, digests=nyhetsbrev, topics=tema)
    errors = ({"epost": address_error} if address_error else {}) | choices.errors
    if errors:
        values = {"epost": epost, "navn": navn, "kommune": kommune, "nyhetsbrev": nyhetsbrev, "tema": tema}
        return _form(request, state, values=values, errors=errors, status=400)
    signup = SignUp(email=address, name=choices.name, municipality=choices.municipality,
                    topics=tuple(choices.topics), digests=tuple(choices.digests), source=FORM_SOURCE,
                    consent_text=consent_text(state.settings, choices.digests))
    try:
        result = request_confirmation(state.settings, state.store, state.transport(), state.secret, signup,
                                      now=state.now())
    except DigestError as err:
        log.warning("confirmation e-mail to %s not sent: %s", mask(address), err)
        raise PageError(503, "Vi fikk ikke sendt e-posten",
                        "Noe gikk galt da vi skulle sende bekreftelsen. Prøv igjen om litt.") from None
    log.info("sign-up for %s: %s", mask(address), "confirmation sent" if result.send else "sent within the hour")
    return thanks


def _pending(state: WebState, token: str):  # type: ignore[no-untyped-def]
    pending = state.store.pending_signup(read_confirmation_token(state.secret, token))
    if pending is None:
        raise PageError(404, "Fant ikke påmeldingen", "Påmeldingen finnes ikke lenger.",
                        link=(f"{state.settings.public_url}/abonner", "Meld deg på på nytt"))
    return pending


@router.get("/bekreft/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str) -> HTMLResponse:
    state = web_state(request)
    pending = _pending(state, token)
    if pending.confirmed_at is not None:
        return render_page(request, "message.html", heading="Allerede bekreftet",
                           paragraphs=["Denne påmeldingen er allerede bekreftet."], link_url="", link_text="")
    return render_page(request, "confirm.html", heading="Bekreft abonnementet", email=pending.signup.email,
                       titles=digest_titles(state.settings, pending.signup.digests), action=f"/bekreft/{token}")


@router.post("/bekreft/{token}", response_class=HTMLResponse)
def confirm(request: Request, token: str) -> HTMLResponse:
    state = web_state(request)
    pending = _pending(state, token)
    profile = state.store.confirm_signup(pending.id, now=state.now())
    if profile is None:
        raise PageError(410, "Lenken er for gammel",
                        "Bekreftelseslenken virker bare i 14 dager. Meld deg på igjen, så får du en ny.",
                        link=(f"{state.settings.public_url}/abonner", "Meld deg på igjen"))
    log.info("sign-up confirmed for %s", mask(profile.email))
    digest = pending.signup.digests[0]
    prefs = preferences_url(state.settings, make_preferences_token(state.secret, profile.subscriber_id, digest))
    receives = [d for d in state.digest_names if profile.receives(d)]
    return render_page(request, "message.html", heading="Takk! Du er påmeldt",
                       paragraphs=[f"{profile.email} får nå {digest_titles(state.settings, receives)}."],
                       link_url=prefs, link_text="Endre innstillingene dine")
