"""The API's description and docs: OpenAPI 3 at /api/v1/openapi.json, Swagger UI at /api/v1/docs from files in the
package (digest/web/api/static: swagger-ui-dist, Apache-2.0, see LICENSE and NOTICE there), nothing from outside."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from digest.web.api.problems import PROBLEM_TYPES, TYPE_BASE, ApiProblem
from digest.web.api.schemas import ProblemType

STATIC = Path(__file__).parent / "static"
ASSETS = {"swagger-ui.css": "text/css", "swagger-ui-bundle.js": "text/javascript", "docs.js": "text/javascript"}

# Swagger UI needs its own scripts and styles (and inline styles, data: images); it talks only to this server.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kulturdigest API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/docs.js"></script>
</body>
</html>
"""


def router() -> APIRouter:
    api = APIRouter(prefix="/v1", include_in_schema=False)

    @api.get("/docs")
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"})

    @api.get("/docs/{asset}")
    def asset(asset: str) -> FileResponse:
        if asset not in ASSETS:
            raise ApiProblem(404, "not-found", "There is nothing at this address.")
        return FileResponse(STATIC / asset, media_type=ASSETS[asset], headers={"Cache-Control": "public, max-age=3600"})

    return api


def problems_router() -> APIRouter:
    api = APIRouter(prefix="/v1/problems", tags=["problem types"])

    @api.get("/{slug}", response_model=ProblemType, summary="What a problem type means",
             responses={404: {"description": "No such problem type."}})
    def problem_type(request: Request, slug: str) -> ProblemType:
        """The `type` of every error answer is the address of its description here."""
        if slug not in PROBLEM_TYPES:
            raise ApiProblem(404, "not-found", "There is no such problem type.")
        title, description = PROBLEM_TYPES[slug]
        return ProblemType(type=TYPE_BASE + slug, title=title, description=description)

    return api
