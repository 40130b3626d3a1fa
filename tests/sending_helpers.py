"""Helpers for the sending tests: a `sending:` block, a generated list of subscribers, the ledger as a dict."""

from __future__ import annotations

import sqlite3
from pathlib import Path

AS_OF = "2019-07-01"


def add_sending(project: Path, **options: object) -> None:
    """Append a `sending:` block to the project's schedule.yaml."""
    lines = "".join(f"  {key}: {value}\n" for key, value in options.items())
    with (project / "schedule.yaml").open("a", encoding="utf-8") as fh:
        fh.write(f"\nsending:\n{lines}")


def import_people(project: Path, run_cli, count: int, *, extra: tuple[tuple[str, str], ...] = ()) -> list[str]:
    rows = [(f"person{i:03d}@example.org", f"Person {i}") for i in range(count)] + list(extra)
    (project / "people.csv").write_text("email,name\n" + "".join(f"{e},{n}\n" for e, n in rows), encoding="utf-8")
    result = run_cli("subscribers", "import", "people.csv")
    assert result.exit_code == 0, result.stderr
    return [email for email, _ in rows]


def ledger(project: Path) -> dict[str, tuple[str, int, int | None, str | None]]:
    """email → (state, attempts, code, reason) for the one edition in the database."""
    with sqlite3.connect(project / "digest.db") as db:
        rows = db.execute("SELECT s.email, d.state, d.attempts, d.code, d.reason FROM deliveries d "
                          "JOIN subscribers s ON s.id = d.subscriber_id").fetchall()
    return {email: (state, attempts, code, reason) for email, state, attempts, code, reason in rows}


def statuses(project: Path) -> dict[str, str]:
    with sqlite3.connect(project / "digest.db") as db:
        return dict(db.execute("SELECT email, status FROM subscribers").fetchall())
