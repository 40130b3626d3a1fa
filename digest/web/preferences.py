"""Preferences from the signed link in every digest: digests, municipality, name, topics — or leave altogether."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse

from digest.consent import Profile
from digest.signup import consent_text
from digest.tokens import TokenClaims, read_preferences_token
from digest.web.context import WebState, web_state
from digest.web.forms import form_lists, read_choices
from digest.web.pages import render_page, unknown_subscriber

router = APIRouter()


def _profile(state: WebState, claims: TokenClaims) -> Profile:
    profile = state.store.profile(claims.subscriber_id)
    if profile is None:
        raise unknown_subscriber()
    return profile


def _not_subscribed(request: Request, state: WebState, email: str) -> HTMLResponse:
    return render_page(request, "message.html", heading="Du abonnerer ikke",
                       paragraphs=[f"{email} får ingen nyhetsbrev fra oss."],
                       link_url=f"{state.settings.public_url}/abonner", link_text="Meld deg på igjen")


def _form(request: Request, state: WebState, token: str, profile: Profile, *, values: dict[str, object],
          errors: dict[str, str] | None = None, saved: bool = False, status: int = 200) -> HTMLResponse:
    return render_page(request, "preferences.html", heading="Innstillinger", status=status, email=profile.email,
                       values=values, saved=saved, action=f"/innstillinger/{token}",
                       leave_action=f"/innstillinger/{token}/forlat", **form_lists(state.settings),
                       **({"errors": errors} if errors else {}))


def _values(state: WebState, profile: Profile) -> dict[str, object]:
    return {"navn": profile.name, "kommune": profile.municipality,
            "nyhetsbrev": [d for d in state.digest_names if profile.receives(d)], "tema": list(profile.topics)}


@router.get("/innstillinger/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str) -> HTMLResponse:
    state = web_state(request)
    claims = read_preferences_token(state.secret, token)
    profile = _profile(state, claims)
    if profile.status != "active":
        return _not_subscribed(request, state, profile.email)
    return _form(request, state, token, profile, values=_values(state, profile))


@router.post("/innstillinger/{token}", response_class=HTMLResponse)
def save_preferences(
    request: Request,
    token: str,
    navn: Annotated[str, Form()] = "",
    kommune: Annotated[str, Form()] = "",
    nyhetsbrev: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    tema: Annotated[list[str], Form()] = [],  # noqa: B006
) -> HTMLResponse:
    state = web_state(request)
    claims = read_preferences_token(state.secret, token)
    profile = _profile(state, claims)
    if profile.status != "active":
        return _not_subscribed(request, state, profile.email)
    choices = read_choices(state.settings, name=navn, municipality=kommune, digests=nyhetsbrev, topics=tema,
                           allow_no_digest=True)
    if choices.errors:
        values = {"navn": navn, "kommune": kommune, "nyhetsbrev": nyhetsbrev, "tema": tema}
        return _form(request, state, token, profile, values=values, errors=choices.errors, status=400)
    updated = state.store.update_preferences(
        claims.subscriber_id, name=choices.name, municipality=choices.municipality, topics=choices.topics,
        digests=choices.digests, all_digests=state.digest_names, source="web:/innstillinger",
        consent_text=consent_text(state.settings, choices.digests), now=state.now())
    if updated is None or updated.status != "active":
        return _left(request, state, profile.email)
    return _form(request, state, token, updated, values=_values(state, updated), saved=True)


@router.post("/innstillinger/{token}/forlat", response_class=HTMLResponse)
def leave(request: Request, token: str) -> HTMLResponse:
    state = web_state(request)
    claims = read_preferences_token(state.secret, token)
    profile = _profile(state, claims)
    state.store.leave(claims.subscriber_id, source="web:/innstillinger", now=state.now())
    return _left(request, state, profile.email)


def _left(request: Request, state: WebState, email: str) -> HTMLResponse:
    return render_page(request, "message.html", heading="Du er meldt av",
                       paragraphs=[f"{email} får ikke flere e-poster fra oss."],
                       link_url=f"{state.settings.public_url}/abonner", link_text="Meld deg på igjen")
