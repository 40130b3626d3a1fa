"""The JSON API for the municipality's own systems (issue 15), mounted at /api in `digest serve`.

Its own FastAPI app, so that everything under /api answers JSON (RFC 9457 problems for errors), never the HTML
pages of the rest of the site. OpenAPI 3 at /api/v1/openapi.json, Swagger UI at /api/v1/docs.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import Mount

from digest.web.api import docs, editions, problems, security, subscribers
from digest.web.api.problems import PROBLEM_MEDIA_TYPE
from digest.web.api.schemas import inputs
from digest.web.api.state import ApiState
from digest.web.context import WebState

MOUNT = "/api"
VERSION = "1.0.0"
DESCRIPTION = """For a municipality's website, CMS, citizen portal and ops tools: add subscribers from their own
forms, read and change them, see the editions and their sends, approve or hold an edition.

Every operation needs an API key (`digest api-keys add NAME --scope …`) in the header `Authorization: Bearer KEY`;
each operation names the scope it needs. Errors are RFC 9457 problem details (`application/problem+json`).
"""

_AUTH_PROBLEMS = {"401": "Missing or wrong API key.", "403": "The key lacks the scope this operation needs.",
                  "429": "Too many requests with this key; see Retry-After."}


def _openapi(app: FastAPI, scopes: dict[tuple[str, str], str]) -> dict[str, Any]:
    """FastAPI's description, with the paths under the server /api/v1 and every error as a problem document."""
    schema = get_openapi(title="kulturdigest API", version=VERSION, description=DESCRIPTION, routes=app.routes)
    schema["servers"] = [{"url": f"{MOUNT}/v1"}]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            scope = scopes.get((method, path))
            if scope is not None:
                operation["x-required-scope"] = scope
                operation["description"] = f"Scope: `{scope}`.\n\n" + operation.get("description", "")
    schema["paths"] = {path.removeprefix("/v1"): item for path, item in schema["paths"].items()}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            public = path.startswith("/problems")
            extra = {"400": "The request could not be read (e.g. the body is not JSON).",
                     "422": "A field does not validate; `field` names it."}
            if not public:
                extra |= _AUTH_PROBLEMS
            for code, text in extra.items():
                responses.setdefault(code, {"description": text})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
                    if code == "429":
                        response["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                               "description": "Seconds to wait."}}
                    if code == "422" and response.get("description") == "Validation Error":
                        response["description"] = extra["422"]
            if public:
                operation.pop("security", None)
            if method == "post" and path.endswith("/approve"):
                responses["202"]["headers"] = {"Location": {"schema": {"type": "string"},
                                                            "description": "The edition's address."}}
    components["Problem"] = problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    field_problem = components["Problem"].pop("$defs", {}).get("FieldProblem")
    if field_problem is not None:
        components["FieldProblem"] = field_problem
    return schema


def create_api(web: WebState) -> FastAPI:
    """The API app over the web app's state; `app.state.api` holds its rate limit and background sends."""
    api = FastAPI(title="kulturdigest API", version=VERSION, docs_url=None, redoc_url=None,
                  openapi_url=None)
    api.state.api = ApiState(web=web)
    routers = [subscribers.router(inputs(web.settings)), editions.router()]
    scopes: dict[tuple[str, str], str] = {}
    for router in routers:
        scopes |= security.required_scopes(router)
        api.include_router(router)
    api.include_router(docs.problems_router())
    api.include_router(docs.router())
    cached: dict[str, Any] = {}

    def document() -> dict[str, Any]:
        if not cached:
            cached.update(_openapi(api, scopes))
        return cached

    def methods_for(path: str) -> list[str]:
        methods: set[str] = set()
        for template, item in document()["paths"].items():
            # Templates hold only letters, "/", "-" and {parameters}: nothing else to escape.
            pattern = f"{MOUNT}/v1" + re.sub(r"\{[^}]+\}", "[^/]+", template)
            if re.fullmatch(pattern, path, re.DOTALL):
                methods |= {method.upper() for method in item}
        return sorted(methods)

    api.state.methods_for = methods_for

    @api.get("/v1/openapi.json", include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return document()

    security.install(api)
    problems.install(api)
    return api


def mount(app: FastAPI, web: WebState) -> ApiState:
    """Mount the API at /api on the web app; returns its state (tests set its rate limit)."""
    api = create_api(web)
    route = Mount(MOUNT, app=api)
    # Everything under /api is the API's, a path with a line break in it too (Starlette's `.` would stop there and
    # leave it to the site's HTML pages).
    route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)
    app.router.routes.append(route)
    state: ApiState = api.state.api
    return state
