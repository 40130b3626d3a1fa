"""Property: no altered token unsubscribes anyone — whatever the change, the answer is 400 and nothing changes."""

from __future__ import annotations

import string
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import load_settings
from digest.store import Store
from digest.tokens import InvalidToken, make_token, read_token
from digest.web import create_app
from digest.web.server import ServerThread
from tests.conftest import REPO, free_port

SECRET = b"property-secret"
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_.="
PEOPLE = [("kari.nordmann@example.org", "Kari"), ("ola.hansen@example.org", "Ola"), ("bjorn.aase@example.org", "")]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("tokens")
    store = Store.open(f"sqlite:///{folder / 'digest.db'}")
    store.import_subscribers(PEOPLE, source="test")
    app = create_app(load_settings(REPO / "schedule.yaml", environ={}), store, secret=SECRET)
    with ServerThread(app, port=free_port()) as url, httpx.Client(base_url=url, follow_redirects=False) as http:
        yield http, store
    store.close()


@st.composite
def altered_tokens(draw: st.DrawFn) -> str:
    subscriber_id = draw(st.sampled_from([1, 2, 3]))
    token = make_token(SECRET, subscriber_id, "kultur")
    position = draw(st.integers(min_value=0, max_value=len(token) - 1))
    how = draw(st.sampled_from(["replace", "delete", "insert", "swap", "truncate", "extend"]))
    char = draw(st.sampled_from(TOKEN_ALPHABET))
    if how == "replace":
        altered = token[:position] + char + token[position + 1:]
    elif how == "delete":
        altered = token[:position] + token[position + 1:]
    elif how == "insert":
        altered = token[:position] + char + token[position:]
    elif how == "swap" and position + 1 < len(token):
        altered = token[:position] + token[position + 1] + token[position] + token[position + 2:]
    elif how == "truncate":
        altered = token[:max(position, 1)]
    else:
        altered = token + char
    return altered if altered != token else token + "A"


@given(token=altered_tokens())
@settings(max_examples=300, deadline=None)
def test_no_altered_token_verifies(token: str) -> None:
    with pytest.raises(InvalidToken):
        read_token(SECRET, token)


@given(token=altered_tokens())
@settings(max_examples=150, deadline=None)
def test_no_altered_token_unsubscribes_anyone(client, token: str) -> None:  # type: ignore[no-untyped-def]
    http, store = client
    response = http.post(f"/avmeld/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 400
    assert "Lenken er ugyldig" in response.text
    assert [s.status for s in store.list_subscribers()] == ["active"] * 3


@given(subscriber_id=st.integers(min_value=0, max_value=2**31), digest=st.text(min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_every_token_reads_back_as_made(subscriber_id: int, digest: str) -> None:
    claims = read_token(SECRET, make_token(SECRET, subscriber_id, digest))
    assert (claims.subscriber_id, claims.digest) == (subscriber_id, digest)
