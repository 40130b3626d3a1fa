"""The JSON API (issue 15) over real HTTP, SMTP and SQLite: keys and scopes, subscribers, editions, problems."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from digest.web.ratelimit import RateLimiter
from tests.api_helpers import Api, assert_problem, start_api
from tests.helpers_mail import link_in, text_of

ADDRESS = "liv.berg@example.org"


@pytest.fixture
def api(project, smtp_server, monkeypatch) -> Iterator[Api]:
    running, stop = start_api(project, smtp_server, monkeypatch)
    try:
        yield running
    finally:
        stop()


# -- keys, scopes, limits ------------------------------------------------------------------------------------------

def test_a_missing_or_wrong_key_is_401_and_a_missing_scope_403(api):
    for client in (api.client(None), api.client("kd_not-a-key")):
        with client:
            problem = assert_problem(client.get("/digests"), 401)
            assert "Bearer" in problem["detail"]
    with httpx.Client(base_url=api.url, headers={"Authorization": "Basic dXNlcjpwYXNz"}) as basic:
        assert_problem(basic.get("/digests"), 401)
    api.add_key("reader", "subscribers:read")
    with api.client("reader") as reader:
        problem = assert_problem(reader.get("/digests"), 403)
        assert "'editions:read'" in problem["detail"] and "'reader'" in problem["detail"]
        assert_problem(reader.post("/subscribers", json={"email": ADDRESS}), 403)
        assert_problem(reader.get(f"/subscribers/{ADDRESS}"), 404)  # the scope it has works


def test_a_revoked_key_stops_at_once(api):
    api.add_key("cms", "editions:read")
    with api.client("cms") as cms:
        assert cms.get("/digests").status_code == 200
        assert api.store.revoke_api_key("cms", now=api.state.now())
        assert_problem(cms.get("/digests"), 401)


def test_each_key_has_its_own_rate_limit(api):
    api.state.limit = RateLimiter(3, 60)
    api.add_key("other", "editions:read")
    with api.client() as busy, api.client("other") as other:
        assert [busy.get("/digests").status_code for _ in range(3)] == [200, 200, 200]
        problem = assert_problem(busy.get("/digests"), 429)
        assert "3 requests" in problem["detail"]
        assert busy.get("/digests").headers["retry-after"] == "60"
        assert other.get("/digests").status_code == 200


def test_each_request_is_logged_with_the_key_name_never_the_key_or_address(api, caplog):
    caplog.set_level(logging.INFO, logger="digest")
    # Straight on the "digest" logger: a command run earlier in this process may have stopped it propagating.
    logger = logging.getLogger("digest")
    logger.addHandler(caplog.handler)
    try:
        with api.client() as client:
            client.get(f"/subscribers/{ADDRESS}")
        with api.client(None) as anonymous:
            anonymous.get("/digests")
    finally:
        logger.removeHandler(caplog.handler)
    records = list({id(r): r for r in caplog.records}.values())  # once, however many ways it reached caplog
    lines = [(r.getMessage(), r.digest_fields) for r in records if r.getMessage() == "api_request"]
    assert ("api_request", {"key": "all", "method": "GET", "path": "/v1/subscribers/{email}", "status": 404,
                            "ms": lines[0][1]["ms"]}) == lines[0]
    assert lines[1][1]["status"] == 401 and lines[1][1]["key"] == "no key"
    assert api.keys["all"] not in caplog.text and ADDRESS not in caplog.text


def test_api_keys_cli_shows_the_key_once_and_stores_only_a_hash(project, run_cli):
    made = run_cli("api-keys", "add", "asker-cms", "--scope", "subscribers:write,editions:read")
    assert made.exit_code == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("kd_") and len(key) > 40
    assert "shown only now" in made.stderr
    listed = run_cli("api-keys", "list")
    assert "asker-cms" in listed.stdout and "editions:read" in listed.stdout and key not in listed.stdout
    assert key.encode() not in (project / "digest.db").read_bytes()
    again = run_cli("api-keys", "add", "asker-cms", "--scope", "editions:read")
    assert again.exit_code == 1 and "has a key already" in again.stderr
    bad = run_cli("api-keys", "add", "x", "--scope", "subscribers:everything")
    assert bad.exit_code == 2 and "unknown scope subscribers:everything" in bad.stderr
    assert run_cli("api-keys", "revoke", "asker-cms").exit_code == 0
    assert "Traceback" not in run_cli("api-keys", "revoke", "asker-cms").stderr
    assert run_cli("api-keys", "revoke", "asker-cms").exit_code == 1


# -- problems ----------------------------------------------------------------------------------------------------

def test_bad_json_unknown_fields_and_unknown_paths_are_problems_not_pages(api):
    with api.client() as client:
        assert_problem(client.post("/subscribers", content=b"{not json",
                                   headers={"Content-Type": "application/json"}), 400, field="body")
        assert_problem(client.post("/subscribers", json={"email": "not an address"}), 422, field="email")
        assert_problem(client.post("/subscribers", json={"email": ADDRESS, "digests": ["sport"]}), 422,
                       field="digests.0")
        assert_problem(client.post("/subscribers", json={"email": ADDRESS, "admin": True}), 422, field="admin")
        assert_problem(client.post("/subscribers", json={"email": ADDRESS, "name": "Liv\nBcc: x"}), 422,
                       field="name")
        assert_problem(client.get("/digests/kultur/editions", params={"limit": "many"}), 422, field="limit")
        assert_problem(client.get("/no-such-thing"), 404)
        assert_problem(client.get(f"{api.site}/api/elsewhere"), 404)
        wrong = assert_problem(client.delete("/digests"), 405)
        assert wrong["detail"] == "DELETE is not allowed here."
        assert client.delete("/digests").headers["allow"] == "GET"
        problem_type = client.get(wrong["type"].removeprefix("/api/v1"))
        assert problem_type.status_code == 200 and problem_type.json()["title"] == "Method not allowed"


# -- subscribers ---------------------------------------------------------------------------------------------------

def test_create_sends_the_sign_up_forms_confirmation_and_a_second_create_sends_none(api, smtp_server):
    with api.client() as client:
        created = client.post("/subscribers", json={"email": ADDRESS, "name": "Liv Berg"})
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"/api/v1/subscribers/{ADDRESS}"
        assert created.json() == {"email": ADDRESS, "name": "Liv Berg", "status": "pending", "municipality": "",
                                  "topics": [], "digests": ["kultur"], "confirmation": "sent"}
        assert len(smtp_server.received) == 1
        message = smtp_server.received[0].message
        assert smtp_server.received[0].recipients == [ADDRESS]
        assert message["Subject"] == "Bekreft abonnementet på Kultur"
        assert "Hei, Liv Berg!" in text_of(message)

        again = client.post("/subscribers", json={"email": ADDRESS.upper(), "name": "Liv Berg"})
        assert again.status_code == 200
        assert (again.json()["status"], again.json()["confirmation"]) == ("pending", "sent_within_the_hour")
        assert len(smtp_server.received) == 1
        assert client.get(f"/subscribers/{ADDRESS}").json()["status"] == "pending"
        assert api.store.subscriber_by_email(ADDRESS) is None  # nobody is subscribed by the API alone

        confirmed = httpx.post(link_in(text_of(message), "/bekreft/"))
        assert confirmed.status_code == 200 and "Takk! Du er påmeldt" in confirmed.text
        subscriber = client.get(f"/subscribers/{ADDRESS}").json()
        assert (subscriber["status"], subscriber["digests"], subscriber["confirmation"]) == ("active", ["kultur"], None)
        third = client.post("/subscribers", json={"email": ADDRESS})
        assert third.status_code == 200 and third.json()["confirmation"] == "not_needed"
        assert len(smtp_server.received) == 1
    consent = json.loads(json.dumps(api.store.export_address(ADDRESS)))["consents"][0]
    assert consent["source"] == "api:all" and consent["text"].startswith("Jeg vil ha nyhetsbrevet Kultur")


def test_create_with_the_organisations_consent_subscribes_at_once_as_an_import(api, smtp_server):
    body = {"email": ADDRESS, "name": "Liv", "municipality": "Asker",
            "consent": {"source": "asker.kommune.no/skjema", "text": "Ja, send meg Kultur.",
                        "at": "2026-11-30T14:05:00+01:00"}}
    api.add_key("portal", "subscribers:write")
    with api.client("portal") as portal:
        problem = assert_problem(portal.post("/subscribers", json=body), 403)
        assert "subscribers:consent" in problem["detail"]
    with api.client() as client:
        created = client.post("/subscribers", json=body)
        assert created.status_code == 201, created.text
        assert (created.json()["status"], created.json()["confirmation"]) == ("active", "not_needed")
        assert client.post("/subscribers", json=body).status_code == 200
        assert smtp_server.received == []
        record = api.store.export_address(ADDRESS)
        assert record["consents"] == [{"event": "consent", "digests": ["kultur"],
                                       "source": "api:all:asker.kommune.no/skjema", "text": "Ja, send meg Kultur.",
                                       "at": "2026-11-30T13:05:00+00:00"}]
        assert record["subscriber"]["municipality"] == "Asker"
        assert_problem(client.post("/subscribers", json={**body, "consent": {**body["consent"],
                                                                             "at": "2026-11-30T14:05:00"}}),
                       422, field="consent.at")
        assert client.post(f"/subscribers/{ADDRESS}/unsubscribe").json()["status"] == "unsubscribed"
        # Someone who left is not brought back by the organisation: only by confirming a sign-up themselves.
        assert assert_problem(client.post("/subscribers", json=body), 409, field="email")["type"].endswith(
            "/suppressed")


def test_read_update_unsubscribe_and_forget(api, smtp_server):
    body = {"email": ADDRESS, "consent": {"source": "cms", "text": "Ja.", "at": "2026-11-30T14:05:00+01:00"}}
    with api.client() as client:
        assert_problem(client.get("/subscribers/nobody@example.org"), 404)
        assert_problem(client.get("/subscribers/not-an-address"), 404)
        assert_problem(client.patch("/subscribers/nobody@example.org", json={"name": "X"}), 404)
        assert client.post("/subscribers", json=body).status_code == 201
        changed = client.patch(f"/subscribers/{ADDRESS}", json={"name": "Liv Berg", "municipality": "Bærum"})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["name"], changed.json()["municipality"]) == ("Liv Berg", "Bærum")
        assert client.get(f"/subscribers/{ADDRESS}").json()["municipality"] == "Bærum"
        assert_problem(client.patch(f"/subscribers/{ADDRESS}", json={"digests": []}), 422, field="digests")
        assert_problem(client.patch(f"/subscribers/{ADDRESS}", json={"topics": ["musikk"]}), 422)

        assert_problem(client.post(f"/subscribers/{ADDRESS}/unsubscribe", json={"digest": "sport"}), 422,
                       field="digest")
        left = client.post(f"/subscribers/{ADDRESS}/unsubscribe", json={"digest": "kultur"})
        assert left.status_code == 200 and (left.json()["status"], left.json()["digests"]) == ("unsubscribed", [])
        assert client.post(f"/subscribers/{ADDRESS}/unsubscribe").json()["status"] == "unsubscribed"
        assert api.store.suppression_reason(ADDRESS) == "unsubscribed"
        assert_problem(client.patch(f"/subscribers/{ADDRESS}", json={"name": "Liv"}), 409)

        api.add_key("writer", "subscribers:write", "subscribers:read")
        with api.client("writer") as writer:
            assert_problem(writer.delete(f"/subscribers/{ADDRESS}"), 403)
        forgotten = client.delete(f"/subscribers/{ADDRESS}")
        assert forgotten.status_code == 200 and forgotten.json() == {"email": ADDRESS, "erased": True,
                                                                      "suppressed": True}
        assert_problem(client.get(f"/subscribers/{ADDRESS}"), 404)
        assert api.store.export_address(ADDRESS)["subscriber"] is None
        assert api.store.suppression_reason(ADDRESS) == "forgotten"
        assert client.delete(f"/subscribers/{ADDRESS}").json()["erased"] is False
    assert smtp_server.received == []


# -- digests and editions -------------------------------------------------------------------------------------------

def _wait_for(client: httpx.Client, path: str, state: str) -> dict:
    deadline = time.monotonic() + 30
    while True:
        edition = client.get(path).json()
        if edition["state"] == state or time.monotonic() > deadline:
            return edition
        time.sleep(0.05)


def test_digests_next_run_editions_and_approve_sends_in_the_background(api, smtp_server, run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    with api.client() as client:
        digests = client.get("/digests").json()
        assert [(d["name"], d["title"], d["approval"]) for d in digests] == [("kultur", "Kultur", False)]
        assert digests[0]["schedule"] == {"cron": "0 7 * * mon", "timezone": "Europe/Oslo"}
        # The clock stands at Monday 1 July 2019, 07:00 in Oslo: that run is due now.
        assert digests[0]["next_run"] == "2019-07-01T07:00:00+02:00"
        assert client.get("/digests/kultur/next-run").json() == {"digest": "kultur",
                                                                  "next_run": "2019-07-01T07:00:00+02:00",
                                                                  "edition": "2019-07-01"}
        assert_problem(client.get("/digests/sport"), 404)
        assert_problem(client.get("/digests/sport/editions"), 404)
        assert client.get("/digests/kultur/editions").json() == []
        assert_problem(client.get("/digests/kultur/editions/2019-07-01"), 404)
        assert_problem(client.get("/digests/kultur/editions/yesterday"), 404)

        api.add_key("viewer", "editions:read")
        with api.client("viewer") as viewer:
            assert_problem(viewer.post("/digests/kultur/editions/2019-07-01/approve"), 403)
        approved = client.post("/digests/kultur/editions/2019-07-01/approve")
        assert approved.status_code == 202, approved.text
        assert approved.json()["state"] == "approved" and approved.json()["articles"] > 0
        location = approved.headers["location"]
        assert location == "/api/v1/digests/kultur/editions/2019-07-01"
        edition = _wait_for(client, location.removeprefix("/api/v1"), "sent")
        assert edition["state"] == "sent", edition
        assert edition["deliveries"]["sent"] == 3 and edition["deliveries"]["failed"] == 0
        assert sorted(r.recipients[0] for r in smtp_server.received) == sorted(
            ["kari.nordmann@example.org", "ola.hansen@example.org", "bjorn.aase@example.org"])
        assert [a["title"] for a in edition["article_list"]][:1] and edition["subject"].startswith("Kultur: ")
        assert edition["archive_url"] == f"{api.site}/arkiv/kultur/2019-07-01"
        assert httpx.get(edition["archive_url"]).status_code == 200
        listed = client.get("/digests/kultur/editions").json()
        assert [(e["key"], e["state"], e["deliveries"]["sent"]) for e in listed] == [("2019-07-01", "sent", 3)]

        again = client.post("/digests/kultur/editions/2019-07-01/approve")
        assert "being sent or was sent" in assert_problem(again, 409)["detail"]
        assert_problem(client.post("/digests/kultur/editions/not-a-date/approve"), 404)
        assert_problem(client.post("/digests/kultur/editions/2019-07-08/hold"), 409)  # no approval rule
    assert len(smtp_server.received) == 3


def test_hold_and_approve_an_edition_that_waits_for_approval(project, smtp_server, monkeypatch, run_cli):
    api, stop = start_api(project, smtp_server, monkeypatch, approval="required")
    try:
        assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
        with api.client() as client:
            assert client.get("/digests").json()[0]["approval"] is True
            held = client.post("/digests/kultur/editions/2019-07-01/hold")
            assert held.status_code == 200, held.text
            assert held.json()["state"] == "held"
            assert [e["state"] for e in client.get("/digests/kultur/editions").json()] == ["held"]
            assert smtp_server.received == []
            assert client.post("/digests/kultur/editions/2019-07-01/approve").status_code == 202
            edition = _wait_for(client, "/digests/kultur/editions/2019-07-01", "sent")
            assert (edition["state"], edition["deliveries"]["sent"]) == ("sent", 3)
            history = api.store.draft_history("kultur", "2019-07-01")
            assert [(c.editor, c.action) for c in history][-2:] == [("api:all", "held"), ("api:all", "approved")]
    finally:
        stop()
