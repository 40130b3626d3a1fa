"""One source health: a listing page whose selectors match nothing, served by a real HTTP server on 127.0.0.1, is
reported as failed, with the same reason, by `digest collect`, `digest status`, the desk's source check and the
scheduler's log."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import SMTPServer, start_desk
from tests.desk_client import logged_in
from tests.httpserver import HTTPFixtureServer, Route
from tests.scheduling import cron_at, edit_schedule, start_digest
from tests.test_sources_web import PAGE_SELECTORS

FIXTURES = Path(__file__).parent / "fixtures" / "web"


@pytest.fixture
def redesigned() -> HTTPFixtureServer:
    # The page has moved to new markup: none of the configured selectors finds an article any more.
    body = (FIXTURES / "redesign.html").read_bytes()
    with HTTPFixtureServer({"/kultur/": Route(body=body, content_type="text/html; charset=utf-8")}) as server:
        yield server


def add_page_source(project: Path, url: str) -> None:
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    files = "      - type: files\n        path: content/\n"
    assert files in text
    page = f"      - type: page\n        url: {url}\n        label: Ny design\n{PAGE_SELECTORS}"
    path.write_text(text.replace(files, files + page), encoding="utf-8")


def test_a_page_whose_selectors_match_nothing_fails_the_same_way_everywhere(
        project, redesigned, run_cli, smtp_server: SMTPServer, monkeypatch):
    url = redesigned.url("/kultur/")
    add_page_source(project, url)

    before = run_cli("status")
    assert before.exit_code == 0, before.stderr
    assert "not fetched yet" in before.stdout  # nothing claims the page is fine before anyone asked it

    collected = run_cli("collect", "kultur", "--as-of", "2019-07-01")
    assert collected.exit_code == 0, collected.stderr
    failure = re.search(rf"FAIL page Ny design \({re.escape(url)}\): failed: (.+)", collected.stdout)
    assert failure, collected.stdout
    reason = failure.group(1).strip()
    assert "selector" in reason  # it says what is wrong: the selectors find nothing
    assert "ok   files content/: 6 articles" in collected.stdout

    status = run_cli("status")
    assert status.exit_code == 0, status.stderr
    shown = " ".join(status.stdout.split())  # the table wraps long rows onto the next line
    assert f"Source failing Ny design ({url}): failed: {reason} (last fetched" in shown, status.stdout
    assert shown.count("Ny design") == 1
    assert "not fetched yet" not in shown
    assert "Source ok content/: 6 articles (last fetched" in shown

    desk, stop = start_desk(project, smtp_server, monkeypatch, link_timeout=None)
    try:
        page = logged_in(desk).get("/redaksjon/kultur", params={"dato": "2019-07-01"})
    finally:
        stop()
    assert page.status_code == 200
    check = re.search(r'<li class="warn" data-check="sources" data-verdict="warn">(.*?)</li>', page.text, re.S)
    assert check, "no sources check with a warning on the desk page"
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", check.group(1))).split())
    assert words.startswith("Advarsel Kilder 1 av 2 kilder feilet sist de ble hentet"), words
    assert f"Ny design ({url}): {reason}" in words
    assert 'id="h-kilder"' not in page.text  # no separate English list at the bottom any more

    # The scheduler's run, as cron starts it, logs the same failure with the same reason.
    run_time = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    edit_schedule(project, schedule={"cron": cron_at(run_time), "timezone": "UTC"})
    proc = start_digest(project, smtp_server.url, "run", "--once")
    _, log = proc.communicate(timeout=120)
    failed = [line for line in log.splitlines() if "Ny design" in line]
    assert failed and all(reason in line for line in failed), log
    assert any("source_failed" in line for line in failed), log


def test_every_source_failing_is_a_fail_on_the_desk(project, redesigned, smtp_server: SMTPServer, monkeypatch):
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    page = f"      - type: page\n        url: {redesigned.url('/kultur/')}\n        label: Ny design\n{PAGE_SELECTORS}"
    path.write_text(text.replace("      - type: files\n        path: content/\n", page), encoding="utf-8")

    desk, stop = start_desk(project, smtp_server, monkeypatch, link_timeout=None)
    try:
        response = logged_in(desk).get("/redaksjon/kultur", params={"dato": "2019-07-01"})
    finally:
        stop()
    assert response.status_code == 200
    assert 'data-check="sources" data-verdict="fail"' in response.text
    assert "Kilden feilet sist den ble hentet" in html.unescape(response.text)
