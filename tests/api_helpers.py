"""The JSON API over real HTTP: `digest serve` on 127.0.0.1 with a fixed clock, mail to aiosmtpd, keys by scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from digest.api_keys import SCOPES, key_hash, new_key
from tests.conftest import DESK_NOW, SMTPServer, free_port

PROBLEM = "application/problem+json"


@dataclass
class Api:
    url: str          # …/api/v1
    site: str         # the web app's root
    settings: object  # digest.config.Settings
    store: object     # digest.store.Store
    state: object     # digest.web.api.state.ApiState
    keys: dict[str, str]

    def client(self, key: str | None = "all") -> httpx.Client:
        headers = {} if key is None else {"Authorization": f"Bearer {self.keys.get(key, key)}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def add_key(self, name: str, *scopes: str) -> str:
        key = new_key()
        assert self.store.add_api_key(name, key_hash(key), tuple(sorted(scopes)), now=datetime.fromisoformat(DESK_NOW))
        self.keys[name] = key
        return key


def start_api(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, *,
              approval: str | None = None) -> tuple[Api, Callable[[], None]]:
    from digest.config import load_settings
    from digest.store import Store
    from digest.web import create_app
    from digest.web.server import ServerThread

    if approval:
        path = project / "schedule.yaml"
        text = path.read_text(encoding="utf-8")
        text = text.replace("    # approval: required", f"    approval: {approval}")
        path.write_text(text.replace("    # editors: [redaksjon@ks.no]", "    editors: [redaksjon@ks.no]"),
                        encoding="utf-8")
    port = free_port()
    monkeypatch.setenv("DIGEST_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    settings = load_settings(project / "schedule.yaml")
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    now = datetime.fromisoformat(DESK_NOW)
    app = create_app(settings, store, now=lambda: now, link_timeout=None)
    server = ServerThread(app, port=port)
    site = server.__enter__()
    api = Api(f"{site}/api/v1", site, settings, store, app.state.api, {})
    api.add_key("all", *SCOPES)

    def stop() -> None:
        api.state.wait_for_sends()
        server.__exit__(None, None, None)
        store.close()

    return api, stop


def assert_problem(response: httpx.Response, status: int, *, field: str | None = None) -> dict:
    """An RFC 9457 problem with that status: the media type, the members, never HTML or a traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/api/v1/problems/") and body["title"] and body["detail"]
    assert "Traceback" not in response.text and "<html" not in response.text.lower()
    if field is not None:
        assert body["field"] == field, body
    return body
