"""`digest stats NAME` and `digest subscribers list` with filters and formats: the figures ops read from a
terminal or a script. A thin shell over digest.stats and the store; registered on the `digest` app by digest.cli."""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Column, Table

from digest.cli_app import _now, _settings, _store, app, out
from digest.consent import SUPPRESSING_STATUSES
from digest.stats import WEEKS, as_json, digest_stats
from digest.store import SubscriberRow


@app.command("stats")
def stats_command(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    as_json_: Annotated[bool, typer.Option("--json", help="The same figures as JSON (field names in the README).")]
    = False,
    weeks: Annotated[int, typer.Option("--weeks", min=1, max=520, help="ISO weeks in the list over time.")] = WEEKS,
) -> None:
    """Per edition: audience, sent, deferred, failed, and who bounced, complained or unsubscribed within 7 days;
    the list per ISO week (active, joined, left). From the ledger and the consent record: no tracking.

    Example: digest stats kultur --json
    """
    settings = _settings()
    stats = digest_stats(settings, _store(settings), name, now=_now(), weeks=weeks)
    if as_json_:
        print(json.dumps(as_json(stats), ensure_ascii=False, indent=2))
        return
    table = Table(Column("Edition", no_wrap=True), "Audience", "Sent", "Deferred", "Failed", "Bounced",
                  "Complaints", "Unsubscribes", title=f"{name}: editions (bounced, complaints, unsubscribes within "
                  "7 days)", title_justify="left")
    for item in stats.editions:
        mark = "" if item.window_complete else " *"
        table.add_row(f"{item.edition}{mark}", *(str(value) for value in (
            item.audience, item.sent, item.deferred, item.failed, item.bounced, item.complaints, item.unsubscribes)))
    out.print(table)
    if any(not item.window_complete for item in stats.editions):
        out.print("* less than 7 days since the send: the last three columns can still grow")
    weekly = Table("Week", "Active", "Joined", "Left", title=f"{name}: the list per week", title_justify="left")
    for week in stats.weeks:
        weekly.add_row(week.week, str(week.active), str(week.joined), str(week.left))
    out.print(weekly)
    out.print(f"{stats.active} active subscribers now")


class ListFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


STATUSES = ("active", *SUPPRESSING_STATUSES)
LIST_FIELDS = ("email", "name", "status", "digests", "municipality", "topics", "created_at")


def _row(person: SubscriberRow) -> dict[str, object]:
    return {"email": person.email, "name": person.name, "status": person.status,
            "digests": None if person.digests is None else list(person.digests),
            "municipality": person.municipality, "topics": list(person.topics),
            "created_at": person.created_at.isoformat()}


def list_subscribers(status: str | None, digest: str | None, search: str | None, fmt: ListFormat) -> None:
    """The body of `digest subscribers list` (the command itself lives with the other subscriber commands)."""
    settings = _settings()
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"{status!r} is not one of {', '.join(STATUSES)}", param_hint="--status")
    if digest is not None and digest not in settings.digests:
        raise typer.BadParameter(f"no digest {digest!r} in schedule.yaml (there are: {', '.join(settings.digests)})",
                                 param_hint="--digest")
    people = _store(settings).search_subscribers(status=status, digest=digest, search=search)
    if fmt is ListFormat.json:
        print(json.dumps([_row(person) for person in people], ensure_ascii=False, indent=2))
    elif fmt is ListFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(LIST_FIELDS)
        for person in people:
            writer.writerow([person.email, person.name, person.status,
                             "*" if person.digests is None else "|".join(person.digests),
                             person.municipality, "|".join(person.topics), person.created_at.isoformat()])
    else:
        table = Table("E-mail", "Name", "Status")
        for person in people:
            table.add_row(person.email, person.name, person.status)
        out.print(table)
        out.print(f"{len(people)} subscribers")
