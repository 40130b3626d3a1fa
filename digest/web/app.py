"""The app factory: one FastAPI app, a router per area (unsubscribe, subscribe, preferences, desk, archive)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from digest.config import Settings
from digest.store import Store
from digest.tokens import InvalidToken, resolve_secret
from digest.transports import Transport, transport_from_url
from digest.web import api, archive, desk, drafts, preferences, subscribe, unsubscribe
from digest.web.auth import LoginRequired, session_options
from digest.web.context import WebState
from digest.web.pages import SECURITY_HEADERS, PageError, error_page, invalid_link, render_page
from digest.web.ratelimit import RateLimiter

# Sign-ups per client IP address and window: generous for an office behind one address, tight for a script.
SIGNUPS_PER_WINDOW = 10
SIGNUP_WINDOW_SECONDS = 600


def create_app(settings: Settings, store: Store, *, transport: Callable[[], Transport] | None = None,
               secret: bytes | None = None, now: Callable[[], datetime] | None = None,
               signup_limit: RateLimiter | None = None, link_timeout: float | None = 8.0) -> FastAPI:
    """The web app over one store. `transport` makes the transport for confirmation mail and test copies (default:
    the one in schedule.yaml), `now` is the clock (tests pass their own), `link_timeout` the seconds the desk gives
    each link of an e-mail to answer (None: links are not checked)."""
    app = FastAPI(title="kulturdigest", docs_url=None, redoc_url=None, openapi_url=None)
    first = next(iter(settings.digests.values()))
    app.state.digest = WebState(
        settings=settings,
        store=store,
        secret=secret if secret is not None else resolve_secret(store),
        transport=transport or (lambda: transport_from_url(settings.transport, root=settings.root)),
        now=now or (lambda: datetime.now(UTC)),
        signup_limit=signup_limit or RateLimiter(SIGNUPS_PER_WINDOW, SIGNUP_WINDOW_SECONDS),
        site_title=first.contact.organisation,
    )
    app.include_router(unsubscribe.router)
    app.include_router(subscribe.router)
    app.include_router(preferences.router)
    app.state.desk = desk.desk_for(settings, link_timeout=link_timeout)
    app.include_router(desk.router)
    app.include_router(drafts.router)
    app.include_router(archive.router)
    # The JSON API (everything under /api answers JSON, never these pages); its state holds the per-key rate limit.
    app.state.api = api.mount(app, app.state.digest)
    # The editors' session cookie; it is scoped to /redaksjon, so the subscribers' pages never see or set one.
    app.add_middleware(SessionMiddleware, **session_options(app.state.digest.secret,
                                                            https=settings.public_url.startswith("https://")))

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(PageError)
    async def page_error(request: Request, error: PageError) -> HTMLResponse:
        return error_page(request, error)

    @app.exception_handler(InvalidToken)
    async def bad_token(request: Request, _error: InvalidToken) -> HTMLResponse:
        # Every signed link (unsubscribe, preferences, confirmation) fails alike: altered, truncated or foreign.
        return error_page(request, invalid_link())

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, error: LoginRequired) -> Response:
        return desk.login_redirect(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> HTMLResponse:
        if error.status_code == 405:
            page = PageError(405, "Ikke tillatt", "Denne adressen tar ikke imot slike forespørsler.")
        else:
            page = PageError(error.status_code, "Fant ikke siden", "Siden finnes ikke.")
        return error_page(request, page)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, _error: RequestValidationError) -> HTMLResponse:
        return error_page(request, PageError(400, "Ugyldig forespørsel", "Skjemaet kunne ikke leses."))

    @app.get("/", response_class=HTMLResponse)
    def front(request: Request) -> HTMLResponse:
        return render_page(request, "message.html", heading=first.contact.organisation,
                           paragraphs=["Her kan du melde deg på nyhetsbrevene våre."],
                           link_url="/abonner", link_text="Meld deg på")

    return app
