"""The JSON API's own description holds (issue 15): OpenAPI 3 that validates, a bounded property-based run of
schemathesis against the running API (no 5xx, no answer outside its schema), and the docs in headless Chromium
with every request staying on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from digest.web.ratelimit import RateLimiter
from tests.api_helpers import Api, start_api


@pytest.fixture
def api(project, smtp_server, monkeypatch) -> Iterator[Api]:
    running, stop = start_api(project, smtp_server, monkeypatch, approval="{auto_after: 2h}")
    try:
        yield running
    finally:
        stop()


def test_the_openapi_document_validates_and_describes_every_operation(api):
    response = httpx.get(f"{api.url}/openapi.json")  # no key needed to read the description
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [{"url": "/api/v1"}]
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert {("POST", "/subscribers"), ("GET", "/subscribers/{email}"), ("PATCH", "/subscribers/{email}"),
            ("POST", "/subscribers/{email}/unsubscribe"), ("DELETE", "/subscribers/{email}"),
            ("GET", "/digests"), ("GET", "/digests/{name}/next-run"), ("GET", "/digests/{name}/editions"),
            ("GET", "/digests/{name}/editions/{key}"), ("POST", "/digests/{name}/editions/{key}/approve"),
            ("POST", "/digests/{name}/editions/{key}/hold")} <= operations
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    create = document["paths"]["/subscribers"]["post"]
    assert create["responses"]["401"]["content"] == {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}
    # Each operation that needs a key names the scope it needs.
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if not path.startswith("/problems"):
                assert operation["x-required-scope"] in operation["description"], (method, path)
    assert document["paths"]["/subscribers/{email}"]["delete"]["x-required-scope"] == "subscribers:forget"
    assert document["paths"]["/digests/{name}/editions/{key}/hold"]["post"]["x-required-scope"] == "editions:approve"
    schema = document["components"]["schemas"]["SubscriberCreate"]
    assert schema["additionalProperties"] is False
    assert document["components"]["schemas"]["DigestName"]["enum"] == ["kultur"]


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_schema(api, tmp_path: Path):
    api.state.limit = RateLimiter(100_000, 60)  # the run is a burst from one key; the limit has its own test
    api.store.import_subscribers([("kari.nordmann@example.org", "Kari")], source="test")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run", f"{api.url}/openapi.json",
        "--checks", "all",
        # use_after_free and ensure_resource_availability need links between operations (stateful phase)
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "12", "--max-time", "40", "--workers", "1", "--request-timeout", "20",
        "--header", f"Authorization: Bearer {api.keys['all']}",
        "--generation-database", "none", "--seed", "15",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output or "passed" in output, output[-3000:]


def test_the_docs_load_in_chromium_from_this_server_alone(api, browser):
    context = browser.new_context()
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{api.url}/docs")
    page.wait_for_selector(".opblock-summary", timeout=30_000)
    assert page.locator(".title").first.inner_text().startswith("kulturdigest API")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/subscribers" in paths and "/digests/{name}/editions/{key}/approve" in paths
    assert page.locator("button.authorize").count() == 1
    assert errors == []
    assert requested and all(url.startswith(api.site + "/") for url in requested), requested
    assert f"{api.url}/openapi.json" in requested
    context.close()
