"""Who is asking: the API key from `Authorization: Bearer …`, its rate limit, the scope each operation needs, and
one log line per request naming the key (never the key itself, nor a subscriber's address)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from digest.api_keys import ApiKey, key_hash
from digest.events import log_event
from digest.web.api.problems import ApiProblem, loggable_path, problem_response
from digest.web.api.state import api_state

# Paths anyone may read: the description of the API, its docs and the catalogue of problem types.
PUBLIC_PREFIXES = ("/v1/openapi.json", "/v1/docs", "/v1/problems")

# Only for the OpenAPI description (the Authorize button of the docs); the middleware does the checking.
bearer = HTTPBearer(auto_error=False, description="An API key from `digest api-keys add NAME --scope …`.")


def _path(request: Request) -> str:
    return request.url.path.removeprefix(request.scope.get("root_path", ""))


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = _path(request)
        if path.startswith(PUBLIC_PREFIXES):
            return await call_next(request)
        state = api_state(request)
        started = time.monotonic()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = None
        if scheme.lower() == "bearer" and token.strip():
            key = state.store.api_key_by_hash(key_hash(token), now=state.now())
        if key is None:
            log_event("api_request", key="wrong key" if token.strip() else "no key", method=request.method,
                      path=loggable_path(path), status=401)
            return problem_response(request, 401, "unauthorized", "Send 'Authorization: Bearer KEY' with a valid "
                                    "API key.", headers={"WWW-Authenticate": 'Bearer realm="kulturdigest"'})
        if not state.limit.allow(key.name):
            log_event("api_request", logging.WARNING, key=key.name, method=request.method, path=loggable_path(path),
                      status=429)
            return problem_response(request, 429, "rate-limited", f"At most {state.limit.limit} requests in "
                                    f"{state.limit.window:g} seconds per key.",
                                    headers={"Retry-After": str(int(state.limit.window))})
        request.state.api_key = key
        response = await call_next(request)
        log_event("api_request", key=key.name, method=request.method, path=loggable_path(path),
                  status=response.status_code, ms=round((time.monotonic() - started) * 1000))
        return response


def require(scope: str) -> Callable[..., ApiKey]:
    """A dependency: the request's key, which must hold `scope` (else 403 naming it)."""

    def check(request: Request,
              _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None) -> ApiKey:
        key: ApiKey | None = getattr(request.state, "api_key", None)
        if key is None:  # only if the middleware was bypassed
            raise ApiProblem(401, "unauthorized", "Send 'Authorization: Bearer KEY' with a valid API key.")
        if scope not in key.scopes:
            raise ApiProblem(403, "forbidden", f"The key {key.name!r} does not have the scope {scope!r}.")
        return key

    check.__name__ = f"require_{scope.replace(':', '_')}"
    check.scope = scope  # type: ignore[attr-defined]  # read by the OpenAPI description
    return check


def required_scopes(router: APIRouter) -> dict[tuple[str, str], str]:
    """(method, path) → the scope its key needs, for every route of `router` guarded by `require`."""
    scopes: dict[tuple[str, str], str] = {}
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        for dependency in route.dependant.dependencies:
            scope = getattr(dependency.call, "scope", None)
            if scope is not None:
                for method in route.methods:
                    scopes[(method.lower(), route.path)] = scope
    return scopes
