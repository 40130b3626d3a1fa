"""Who may use the desk: editor sessions in a signed cookie, and a CSRF token for every form.

The cookie (Starlette's SessionMiddleware, signed with a key derived from the app's secret) is HttpOnly,
SameSite=Lax, Secure when base_url is https, and sent by the browser only for /redaksjon: no other page of the app
ever reads or sets it, so the subscribers' pages (one-click unsubscribe above all) stay cookie-free. It holds the
editor's name, a stamp of their password hash (a new password or a removed editor ends every session), the id of
a session kept server-side (logging out deletes it, so a saved copy of the cookie stops working) and the CSRF
token, which each form sends back in a hidden field.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Request

from digest.editors import session_stamp
from digest.tokens import purpose_key
from digest.web.context import web_state
from digest.web.pages import PageError

DESK = "/redaksjon"
LOGIN = f"{DESK}/logg-inn"
SESSION_COOKIE = "kulturdigest_redaksjon"
SESSION_SECONDS = 8 * 60 * 60  # a working day; then log in again
CSRF_FIELD = "csrf"
SESSION_ID = "sid"  # the id of the session's row in the store (digest/store/desk_sessions.py)


def session_options(secret: bytes, *, https: bool) -> dict[str, Any]:
    """Keyword arguments for SessionMiddleware."""
    return {
        "secret_key": purpose_key(secret, "desk-session").hex(),
        "session_cookie": SESSION_COOKIE,
        "max_age": SESSION_SECONDS,
        "path": DESK,
        "same_site": "lax",
        "https_only": https,
    }


class LoginRequired(Exception):
    """Raised by desk routes without a valid session; the app answers with the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def csrf_token(request: Request) -> str:
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return str(token)


def require_csrf(request: Request, submitted: str) -> None:
    expected = request.session.get(CSRF_FIELD)
    if not expected or not submitted or not hmac.compare_digest(str(expected), submitted):
        raise PageError(403, "Skjemaet ble avvist",
                        "Skjemaet manglet en gyldig sikkerhetskode (CSRF), så ingenting ble gjort. Last siden på "
                        "nytt og prøv igjen.", link=(DESK, "Til redaksjonen"))


def current_editor(request: Request) -> str | None:
    name = request.session.get("editor")
    stamp = request.session.get("stamp")
    session_id = request.session.get(SESSION_ID)
    if not name or not stamp or not session_id:
        return None
    state = web_state(request)
    current = session_stamp(state.store, str(name))
    open_for = state.store.desk_session_editor(_id_hash(str(session_id)), now=state.now())
    if current is None or not hmac.compare_digest(current, str(stamp)) or open_for != name:
        # Logged out, removed, a new password, or expired: a saved copy of the cookie opens nothing.
        request.session.clear()
        return None
    return str(name)


def require_editor(request: Request) -> str:
    name = current_editor(request)
    if name is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(path)
    return name


def log_in(request: Request, name: str) -> None:
    """A fresh session for the editor: nothing from before the login (a planted CSRF token) carries over."""
    state = web_state(request)
    stamp = session_stamp(state.store, name)
    session_id = secrets.token_urlsafe(32)
    now = state.now()
    state.store.start_desk_session(_id_hash(session_id), name, now=now,
                                   expires_at=now + timedelta(seconds=SESSION_SECONDS))
    request.session.clear()
    request.session.update({"editor": name, "stamp": stamp, "since": int(time.time()), SESSION_ID: session_id,
                            CSRF_FIELD: secrets.token_urlsafe(32)})


def log_out(request: Request) -> None:
    """Ends the session on the server too: the cookie, or any copy of it, no longer opens the desk."""
    session_id = request.session.get(SESSION_ID)
    if session_id:
        web_state(request).store.end_desk_session(_id_hash(str(session_id)))
    request.session.clear()


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


def login_url(next_path: str = "") -> str:
    return f"{LOGIN}?neste={quote(next_path, safe='/')}" if next_path else LOGIN


def safe_next(value: str) -> str:
    """Only a path inside the desk: a login link must not send anyone to another site."""
    if (value == DESK or value.startswith((DESK + "/", DESK + "?"))) and "\\" not in value:
        return value
    return DESK
