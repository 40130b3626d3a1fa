"""What every `digest` command shares: the Typer app, the consoles, the settings and store it opens, dates.

digest.cli defines the core commands and `main`; cli_ops.py and cli_editions.py add theirs to the same app.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from digest.app.editions import PROVISIONAL
from digest.config import Settings, load_settings
from digest.store import Store

EXAMPLES = """Examples:

  digest collect kultur --explain

  digest preview kultur --as-of 2019-07-01 --out preview.html

  digest send kultur --as-of 2019-07-01 --dry-run

  digest send kultur --to redaktor@example.org

  digest subscribers import examples/subscribers.csv

  digest subscribers list

  digest subscribers export kari.nordmann@example.org

  digest bounces ingest ~/Maildir/.bounces

  digest serve --port 8000

  digest editors add kari

  digest run                      (or: digest run --once, from cron)

  digest status

  digest approve kultur

  digest edition refresh kultur 2026-11-23
"""

app = typer.Typer(
    help="kulturdigest: build digest e-mails of culture news and send them to subscribers.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class State:
    config: Path = Path("schedule.yaml")


def _settings() -> Settings:
    return load_settings(State.config)


def _store(settings: Settings) -> Store:
    url = settings.state
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        # A relative SQLite path is read from the config's folder, not from wherever the command runs.
        url = f"sqlite:///{settings.resolve(url.removeprefix('sqlite:///'))}"
    return Store.open(url)


def _as_of(value: str | None) -> date | datetime | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM)",
                                 param_hint="--as-of") from None


def _now() -> datetime:
    return datetime.now(UTC)


# How the CLI names an edition's state (digest.app.editions).
STATE_WORDS = {PROVISIONAL: "not sent yet", "draft": "draft, not sent yet",
               "approved": "approved", "held": "held", "expired": "expired", "sending": "being sent",
               "sent": "as sent", "stopped": "stopped before everyone had it"}

AsOf = Annotated[str | None, typer.Option("--as-of", help="Build the edition that goes out on this date "
                                           "(YYYY-MM-DD, Europe/Oslo), e.g. 2019-07-01.")]


@app.callback()
def main_options(
    config: Annotated[Path, typer.Option("--config", "-c", help="The schedule file.", envvar="DIGEST_CONFIG")]
    = Path("schedule.yaml"),
) -> None:
    State.config = config



def _local(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
