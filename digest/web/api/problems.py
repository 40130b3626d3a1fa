"""Errors of the JSON API as RFC 9457 problem details (application/problem+json), never a traceback or a page.

Each problem has a `type` (a URI under /api/v1/problems/ that answers with a description of it), `title`, `status`,
`detail`, and for a request that does not validate the `field` it is about (and every such field in `errors`).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("digest.api")

_ADDRESS_IN_PATH = re.compile(r"(/subscribers/)[^/?]+")


def loggable_path(path: str) -> str:
    """The path as a log may keep it: a subscriber's address in it is left out."""
    return _ADDRESS_IN_PATH.sub(r"\1{email}", path)


PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "/api/v1/problems/"

# slug → (title, what it means): the catalogue /api/v1/problems/{slug} answers from.
PROBLEM_TYPES = {
    "bad-request": ("Bad request", "The request could not be read, e.g. its body is not JSON."),
    "validation": ("Invalid request", "A field is missing or has a value the API does not take; `field` names it."),
    "unauthorized": ("Missing or wrong API key", "Send 'Authorization: Bearer KEY' with a key from "
                     "`digest api-keys add`. A revoked key no longer works."),
    "forbidden": ("Missing scope", "The key works but does not hold the scope this operation needs; `detail` "
                  "names it. Make a key with that scope (`digest api-keys add NAME --scope …`)."),
    "not-found": ("Not found", "No such digest, edition, subscriber or address."),
    "method-not-allowed": ("Method not allowed", "This address does not take that method; `Allow` lists those "
                           "it takes."),
    "conflict": ("Conflict", "The request cannot be carried out in the state the thing is in now (e.g. an "
                 "edition that is being sent cannot be approved again); `detail` says why."),
    "suppressed": ("Address suppressed", "The address left, bounced, complained or was forgotten. Only its owner "
                   "can undo that, by signing up again and confirming (create without `consent`)."),
    "rate-limited": ("Too many requests", "The key made too many requests in a short time; wait `Retry-After` "
                     "seconds."),
    "unavailable": ("Service unavailable", "Something the request needs (the mail server, the sources) did not "
                    "answer; try again later."),
    "server-error": ("Internal error", "Something went wrong on our side; it has been logged."),
}

_STATUS_SLUGS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 409: "conflict", 422: "validation", 429: "rate-limited",
                 503: "unavailable"}


class FieldProblem(BaseModel):
    field: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[FieldProblem] | None = None


class ApiProblem(Exception):
    """Ends an API request with a problem of kind `slug`."""

    def __init__(self, status: int, slug: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.field = field
        self.headers = headers or {}


def problem_response(request: Request | None, status: int, slug: str, detail: str, *, field: str | None = None,
                     errors: list[FieldProblem] | None = None, headers: dict[str, str] | None = None
                     ) -> JSONResponse:
    title = PROBLEM_TYPES[slug][0]
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
    if field is not None:
        body["field"] = field
    if errors:
        body["errors"] = [error.model_dump() for error in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header"} and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the path takes, from the API's description (Starlette names only the first route's)."""
    methods_for = getattr(request.app.state, "methods_for", None)
    return [] if methods_for is None else methods_for(request.url.path)


def install(app: FastAPI) -> None:
    """Every error of `app` as a problem."""

    @app.exception_handler(ApiProblem)
    async def api_problem(request: Request, error: ApiProblem) -> JSONResponse:
        return problem_response(request, error.status, error.slug, error.detail, field=error.field,
                                headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        raw = list(error.errors())
        if any(item.get("type") == "json_invalid" for item in raw):
            return problem_response(request, 400, "bad-request", "The body is not valid JSON.", field="body")
        errors = [FieldProblem(field=_field(tuple(item.get("loc", ()))) or "body",
                               detail=str(item.get("msg", "invalid"))) for item in raw]
        first = errors[0] if errors else FieldProblem(field="body", detail="invalid")
        return problem_response(request, 422, "validation", f"{first.field}: {first.detail}", field=first.field,
                                errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request)) or headers.get("Allow", "")
        slug = _STATUS_SLUGS.get(error.status_code, "bad-request" if error.status_code < 500 else "server-error")
        detail = {404: "There is nothing at this address.",
                  405: f"{request.method} is not allowed here."}.get(error.status_code, str(error.detail))
        return problem_response(request, error.status_code, slug, detail, headers=headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("API request %s %s failed", request.method, loggable_path(request.url.path))
        return problem_response(request, 500, "server-error", "Something went wrong on our side; it has been "
                                "logged.")
