"""Hostile web clients: a saved desk cookie after logout or removal, and a spoofed X-Forwarded-For."""

from __future__ import annotations

import httpx

from digest.config import load_settings
from digest.store import Store
from digest.web import create_app
from digest.web.ratelimit import RateLimiter
from digest.web.server import ServerThread
from tests.conftest import EDITOR, free_port
from tests.desk_client import csrf_of, logged_in

SIGN_UP = {"navn": "Liv", "kommune": "Asker", "nyhetsbrev": "kultur"}


def saved_copy(client: httpx.Client, desk) -> httpx.Client:
    """A second client holding a copy of the session cookie, as someone who saved it would."""
    copy = httpx.Client(base_url=desk.url, timeout=30)
    for cookie in client.cookies.jar:
        copy.cookies.set(cookie.name, cookie.value, domain=cookie.domain, path=cookie.path)
    return copy


def test_a_saved_cookie_opens_nothing_after_logout(desk):
    client = logged_in(desk)
    saved = saved_copy(client, desk)
    assert saved.get("/redaksjon", follow_redirects=False).status_code == 200  # the copy works while logged in
    page = client.get("/redaksjon")
    assert client.post("/redaksjon/logg-ut", data={"csrf": csrf_of(page.text)}).status_code == 303
    refused = saved.get("/redaksjon", follow_redirects=False)
    assert refused.status_code == 303 and "/redaksjon/logg-inn" in refused.headers["location"]
    assert saved.get("/redaksjon/kultur", params={"dato": "2019-07-01"},
                     follow_redirects=False).status_code == 303
    # A new login still works, and is a new session.
    assert logged_in(desk).get("/redaksjon", follow_redirects=False).status_code == 200


def test_a_saved_cookie_opens_nothing_after_the_editor_is_removed(desk, run_cli):
    saved = saved_copy(logged_in(desk), desk)
    assert run_cli("editors", "remove", EDITOR).exit_code == 0
    assert saved.get("/redaksjon", follow_redirects=False).status_code == 303


def sign_up_server(project, smtp_server, monkeypatch, *, trusted: str | None = None):
    port = free_port()
    monkeypatch.setenv("DIGEST_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    if trusted is not None:
        schedule = project / "schedule.yaml"
        schedule.write_text(f"trusted_proxies: [{trusted}]\n" + schedule.read_text(encoding="utf-8"),
                            encoding="utf-8")
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    app = create_app(load_settings(project / "schedule.yaml"), store, signup_limit=RateLimiter(3, 600))
    return ServerThread(app, port=port), store


def test_a_spoofed_forwarded_for_does_not_move_the_sign_up_limit(project, smtp_server, monkeypatch):
    server, store = sign_up_server(project, smtp_server, monkeypatch)
    try:
        with server as url:
            answers = [httpx.post(f"{url}/abonner", data={**SIGN_UP, "epost": f"liv{n}@example.org"},
                                  headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(5)]
    finally:
        store.close()
    assert answers == [200, 200, 200, 429, 429]
    assert len(smtp_server.received) == 3


def test_the_forwarded_for_of_a_trusted_proxy_is_used(project, smtp_server, monkeypatch):
    server, store = sign_up_server(project, smtp_server, monkeypatch, trusted="127.0.0.1")
    try:
        with server as url:
            def sign_up(n: int, forwarded: str) -> int:
                return httpx.post(f"{url}/abonner", data={**SIGN_UP, "epost": f"liv{n}@example.org"},
                                  headers={"X-Forwarded-For": forwarded}).status_code

            # Behind the proxy, each client has its own limit …
            assert [sign_up(n, f"203.0.113.{n}") for n in range(4)] == [200, 200, 200, 200]
            # … and what a client writes to the left of the proxy's own entry changes nothing.
            spoofed = [sign_up(10 + n, f"198.51.100.{n}, 192.0.2.7") for n in range(4)]
    finally:
        store.close()
    assert spoofed == [200, 200, 200, 429]


def test_a_spoofed_forwarded_for_does_not_move_the_login_limit(desk):
    client = httpx.Client(base_url=desk.url, timeout=30)
    token = csrf_of(client.get("/redaksjon/logg-inn").text)
    answers = [client.post("/redaksjon/logg-inn", data={"navn": EDITOR, "passord": "feil passord her",
                                                        "csrf": token},
                           headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code for n in range(12)]
    assert answers == [401] * 10 + [429, 429]
