"""`digest stats`, `digest status --json` and `digest subscribers list` filters: JSON that parses and holds what
the store knows (the ledger, the consent record, statuses), over a real send to aiosmtpd."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from digest.store import Store
from digest.store.schema import consents, editions
from tests.conftest import SMTPServer

PEOPLE = ["anne@example.org", "bodil@example.org", "carl@example.org", "dag@example.org", "eva@example.org"]


def _open(project: Path) -> Store:
    return Store.open(f"sqlite:///{project / 'digest.db'}")


@pytest.fixture
def sent_ten_days_ago(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, run_cli):
    """Five subscribers, an edition sent (bodil refused: no such user), everything recorded dated ten days back;
    then anne unsubscribes a day after the send, carl complains after two days, dag leaves after eight."""
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    smtp_server.handler.replies["bodil@example.org"] = "550 5.1.1 No such user here"
    (project / "list.csv").write_text("email,name\n" + "".join(f"{p},{p.split('@')[0].title()}\n" for p in PEOPLE),
                                      encoding="utf-8")
    assert run_cli("subscribers", "import", "list.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code in (0, 2)
    store = _open(project)
    sent = datetime.now(UTC) - timedelta(days=10)
    with store.engine.begin() as conn:
        conn.execute(editions.update().values(created_at=sent))
        conn.execute(consents.update().values(at=sent - timedelta(days=1)))
    person = {p: store.subscriber_by_email(p) for p in PEOPLE}
    store.unsubscribe(person["anne@example.org"].id, "kultur", all_digests=["kultur"], source="web:avmeld",
                      now=sent + timedelta(days=1))
    store.leave(person["carl@example.org"].id, status="complained", source="complaint", now=sent + timedelta(days=2))
    store.leave(person["dag@example.org"].id, source="web:/innstillinger", now=sent + timedelta(days=8))
    yield store
    store.close()


def test_stats_json_holds_the_editions_figures_and_the_list_per_week(sent_ten_days_ago: Store, run_cli):
    result = run_cli("stats", "kultur", "--json", "--weeks", "4")
    assert result.exit_code == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["digest"] == "kultur" and stats["window_days"] == 7
    [edition] = stats["editions"]
    assert {key: edition[key] for key in ("edition", "audience", "sent", "deferred", "failed", "pending", "bounced",
                                          "complaints", "unsubscribes", "window_complete")} == {
        "edition": "2019-07-01", "audience": 5, "sent": 4, "deferred": 0, "failed": 1, "pending": 0, "bounced": 1,
        "complaints": 1, "unsubscribes": 1, "window_complete": True}  # dag left after eight days: not counted
    # The same figures the store's ledger holds.
    stored = sent_ten_days_ago.find_edition("kultur", "2019-07-01")
    counts = sent_ten_days_ago.delivery_counts(stored.id)
    assert (edition["sent"], edition["failed"]) == (counts["sent"], counts["failed"])

    weeks = stats["weeks"]
    assert len(weeks) == 4 and [week["week"] for week in weeks] == sorted(week["week"] for week in weeks)
    assert stats["active"] == weeks[-1]["active"] == 1  # only eva is left
    assert sum(week["joined"] for week in weeks) == 5
    assert sum(week["left"] for week in weeks) == 4  # anne, bodil (refused), carl, dag
    for before, after in itertools.pairwise(weeks):
        assert after["active"] == before["active"] + after["joined"] - after["left"]

    table = run_cli("stats", "kultur")
    assert table.exit_code == 0 and "2019-07-01" in table.stdout and "1 active subscribers now" in table.stdout


def test_status_json_has_the_tables_figures(sent_ten_days_ago: Store, run_cli):
    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.stderr
    [kultur] = [item for item in json.loads(result.stdout)["digests"] if item["digest"] == "kultur"]
    assert kultur["last_edition"] == {"edition": "2019-07-01", "sent": 4, "deferred": 0, "failed": 1,
                                      "not_yet_sent": 0, "refused": 0, "stop_reason": None}
    assert kultur["schedule"] == {"cron": "0 7 * * mon", "timezone": "Europe/Oslo", "misfire_grace": "6h"}
    assert datetime.fromisoformat(kultur["next_run"]) > datetime.now(UTC)
    assert kultur["sources"][0]["ok"] is True
    table = run_cli("status").stdout
    assert "2019-07-01: sent 4, deferred 0, failed 1" in table


def test_subscribers_list_filters_and_formats(sent_ten_days_ago: Store, run_cli):
    everyone = json.loads(run_cli("subscribers", "list", "--format", "json").stdout)
    assert [person["email"] for person in everyone] == sorted(PEOPLE)
    statuses = {person["email"]: person["status"] for person in everyone}
    assert statuses == {"anne@example.org": "unsubscribed", "bodil@example.org": "bounced",
                        "carl@example.org": "complained", "dag@example.org": "unsubscribed",
                        "eva@example.org": "active"}
    unsubscribed = json.loads(run_cli("subscribers", "list", "--status", "unsubscribed", "--format", "json").stdout)
    assert [person["email"] for person in unsubscribed] == ["anne@example.org", "dag@example.org"]
    found = run_cli("subscribers", "list", "--search", "BOD", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(found)))
    assert [(row["email"], row["name"], row["status"]) for row in rows] == [("bodil@example.org", "Bodil",
                                                                              "bounced")]
    active = json.loads(run_cli("subscribers", "list", "--digest", "kultur", "--status", "active",
                                "--format", "json").stdout)
    assert [person["email"] for person in active] == ["eva@example.org"]
    assert "5 subscribers" in run_cli("subscribers", "list").stdout
    # A search is text, not a pattern: "%" matches only a "%".
    assert json.loads(run_cli("subscribers", "list", "--search", "%", "--format", "json").stdout) == []

    wrong = run_cli("subscribers", "list", "--status", "gone")
    assert wrong.exit_code == 2 and "'gone' is not one of active, unsubscribed, bounced, complained" in wrong.stderr
    assert run_cli("subscribers", "list", "--digest", "ukjent").exit_code == 2
