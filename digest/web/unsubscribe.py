"""Unsubscribe links from every e-mail: GET shows a page with one button, POST (RFC 8058 one-click) unsubscribes.

Mail scanners and link previews fetch every URL in a message, so a GET must never change anything. The POST is what
mailbox providers send when the reader presses their own "unsubscribe" button (body `List-Unsubscribe=One-Click`):
it takes effect at once and answers 200 — no redirect, no cookie, no login — since the signed token is the only
proof needed, and the provider follows nothing else.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from digest.message import preferences_url
from digest.signup import digest_titles
from digest.tokens import make_preferences_token, read_token
from digest.web.context import WebState, web_state
from digest.web.pages import render_page, unknown_subscriber

router = APIRouter()


def _title(state: WebState, digest: str) -> str:
    config = state.settings.digests.get(digest)
    return config.title if config else digest


@router.get("/avmeld/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str) -> HTMLResponse:
    state = web_state(request)
    claims = read_token(state.secret, token)
    profile = state.store.profile(claims.subscriber_id)
    if profile is None:
        raise unknown_subscriber()
    prefs = preferences_url(state.settings, make_preferences_token(state.secret, claims.subscriber_id, claims.digest))
    if not profile.receives(claims.digest):
        remaining = [d for d in state.digest_names if profile.receives(d)]
        return render_page(request, "unsubscribed.html", heading="Du er allerede meldt av",
                           digest_title=_title(state, claims.digest), email=profile.email,
                           remaining=digest_titles(state.settings, remaining), preferences_url=prefs,
                           subscribe_url=f"{state.settings.public_url}/abonner")
    return render_page(request, "unsubscribe.html", heading=f"Meld deg av {_title(state, claims.digest)}",
                       digest_title=_title(state, claims.digest), email=profile.email,
                       action=f"/avmeld/{token}", preferences_url=prefs)


@router.post("/avmeld/{token}", response_class=HTMLResponse)
def unsubscribe_now(request: Request, token: str) -> HTMLResponse:
    # The body (List-Unsubscribe=One-Click) is not needed to decide: a POST to a valid link is the request.
    state = web_state(request)
    claims = read_token(state.secret, token)
    result = state.store.unsubscribe(claims.subscriber_id, claims.digest, all_digests=state.digest_names,
                                     source="web:avmeld", now=state.now())
    if result is None:
        raise unknown_subscriber()
    prefs = preferences_url(state.settings, make_preferences_token(state.secret, claims.subscriber_id, claims.digest))
    return render_page(request, "unsubscribed.html", heading="Du er meldt av",
                       digest_title=_title(state, claims.digest), email=result.email,
                       remaining=digest_titles(state.settings, result.remaining), preferences_url=prefs,
                       subscribe_url=f"{state.settings.public_url}/abonner")
