"""Fetching over real HTTP on 127.0.0.1: retries, redirects, final errors, and use from async code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from digest.sources.fetch import Fetched, FetchError, FetchRequest, fetch_all
from tests.httpserver import HTTPFixtureServer, Route

AGENT = "kulturdigest/test (+http://127.0.0.1)"


@pytest.fixture
def web() -> Iterator[HTTPFixtureServer]:
    with HTTPFixtureServer({
        "/ok.rss": Route(body=b"<rss/>"),
        "/recovering.rss": Route(body=b"<rss/>", fail_first=1),
        "/missing.rss": Route(status=404, body=b"gone"),
        "/moved.rss": Route(status=301, headers={"Location": "/feeds/ny.rss"}),
        "/feeds/ny.rss": Route(body=b"<rss>moved</rss>"),
    }) as server:
        yield server


def test_a_server_that_recovers_is_retried(web):
    [result] = fetch_all([FetchRequest(url=web.url("/recovering.rss"), timeout=5, retries=2)], agent=AGENT)

    assert isinstance(result, Fetched) and result.body == b"<rss/>" and result.attempts == 2
    assert [hit.status for hit in web.hits("/recovering.rss")] == [503, 200]


def test_a_missing_page_is_not_retried(web):
    [result] = fetch_all([FetchRequest(url=web.url("/missing.rss"), timeout=5, retries=2)], agent=AGENT)

    assert isinstance(result, FetchError) and result.status == 404
    assert str(result) == "the server answered HTTP 404 Not Found"
    assert len(web.hits("/missing.rss")) == 1


def test_redirects_are_followed_and_the_final_url_kept(web):
    [result] = fetch_all([FetchRequest(url=web.url("/moved.rss"), timeout=5)], agent=AGENT)

    assert isinstance(result, Fetched) and result.body == b"<rss>moved</rss>"
    assert result.url == web.url("/moved.rss") and result.final_url == web.url("/feeds/ny.rss")


def test_a_closed_port_is_a_connection_error():
    with HTTPFixtureServer() as server:
        url = server.url("/ok.rss")
    [result] = fetch_all([FetchRequest(url=url, timeout=2, retries=1)], agent=AGENT)

    assert isinstance(result, FetchError) and str(result).startswith("cannot connect")


def test_works_from_inside_a_running_event_loop(web):
    async def handler() -> list[Fetched | FetchError]:
        return fetch_all([FetchRequest(url=web.url("/ok.rss"), timeout=5)], agent=AGENT)

    [result] = asyncio.run(handler())
    assert isinstance(result, Fetched) and result.body == b"<rss/>"
    assert web.hits("/ok.rss")[0].headers["User-Agent"] == AGENT
