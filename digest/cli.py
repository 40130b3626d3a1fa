"""`digest …`: a thin Typer shell over the pipeline and the store. Errors become one line and exit code 1."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from digest.config import Settings, load_settings
from digest.errors import DigestError
from digest.models import SendReport
from digest.pipeline import nothing_new_message, prepare_edition, send_edition, send_test, write_preview
from digest.render import render
from digest.store import Store
from digest.subscribers import read_subscriber_csv
from digest.transports import transport_from_url

EXAMPLES = """Examples:

  digest preview kultur --as-of 2019-07-01 --out preview.html

  digest send kultur --as-of 2019-07-01 --dry-run

  digest send kultur --to redaktor@example.org

  digest subscribers import examples/subscribers.csv

  digest subscribers list
"""

app = typer.Typer(
    help="kulturdigest: build digest e-mails of culture news and send them to subscribers.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
subscribers_app = typer.Typer(help="Manage subscribers.\n\nExample: digest subscribers import list.csv",
                              no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")

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


AsOf = Annotated[str | None, typer.Option("--as-of", help="Build the edition that goes out on this date "
                                           "(YYYY-MM-DD, Europe/Oslo), e.g. 2019-07-01.")]


@app.callback()
def main_options(
    config: Annotated[Path, typer.Option("--config", "-c", help="The schedule file.", envvar="DIGEST_CONFIG")]
    = Path("schedule.yaml"),
) -> None:
    State.config = config


@app.command()
def preview(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    as_of: AsOf = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the HTML (a .txt goes beside it).")]
    = None,
) -> None:
    """Render the next edition (or one already sent) to an HTML file and a text file, and print the path.

    Example: digest preview kultur --as-of 2019-07-01 --out preview.html
    """
    settings = _settings()
    store = _store(settings)
    edition = prepare_edition(settings, store, name, as_of=_as_of(as_of), now=_now())
    if not edition.articles:
        out.print(nothing_new_message(edition))
        return
    rendered = render(settings, settings.digest(name), edition)
    target = out_file or Path("outbox") / "preview" / f"{name}-{edition.key}.html"
    html_path, txt_path = write_preview(settings, rendered, target)
    state = "as sent" if edition.sent else "not sent yet"
    err.print(f"{name} {edition.key}: {len(edition.articles)} articles, {rendered.html_bytes / 1024:.0f} KB "
              f"HTML ({state}); text part in {txt_path}")
    print(html_path)


@app.command()
def send(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    as_of: AsOf = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build and count every message; send nothing.")]
    = False,
    to: Annotated[str | None, typer.Option("--to", help="Send one test copy to this address; record nothing.")]
    = None,
) -> None:
    """Send the edition to every subscriber who has not had it yet. Running it again sends nothing twice.

    Example: digest send kultur --as-of 2019-07-01
    """
    settings = _settings()
    store = _store(settings)
    transport = transport_from_url(settings.transport, root=settings.root)
    if to:
        report = send_test(settings, store, transport, name, as_of=_as_of(as_of), now=_now(), to=to)
    else:
        with _progress_bar() as bar:
            task = bar.add_task("Sending", total=None)
            report = send_edition(settings, store, transport, name, as_of=_as_of(as_of), now=_now(),
                                  dry_run=dry_run,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    _print_report(report, test_copy=bool(to))
    if report.failed or report.deferred:
        raise typer.Exit(2 if report.sent else 1)


def _progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


def _print_report(report: SendReport, *, test_copy: bool) -> None:
    if report.articles == 0:
        out.print(report.problems[0] if report.problems else "Nothing to send.")
        return
    if test_copy:
        out.print(f"Test copy of {report.digest} {report.edition_key} sent via {report.destination} "
                  "(not recorded as a delivery).")
        return
    if report.dry_run:
        out.print(f"Dry run: {report.digest} {report.edition_key} with {report.articles} articles would go to "
                  f"{report.sent} subscribers. Nothing was sent.")
        return
    out.print(f"{report.digest} {report.edition_key}: {report.articles} articles; sent {report.sent}, "
              f"deferred {report.deferred}, failed {report.failed}"
              + (f", already sent before {report.skipped_already_sent}" if report.skipped_already_sent else "")
              + ".")
    if report.sent:
        out.print(f"Messages: {report.destination}")
    elif not (report.failed or report.deferred):
        out.print("Every subscriber already has this edition; nothing new was sent.")
    for problem in report.problems[:20]:
        err.print(f"  {problem}")


@subscribers_app.command("import")
def subscribers_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV with the columns email,name.")],
) -> None:
    """Add subscribers from a CSV file (email,name). A file with any bad row imports nothing.

    Example: digest subscribers import examples/subscribers.csv
    """
    rows = read_subscriber_csv(csv_file)
    store = _store(_settings())
    report = store.import_subscribers(rows, source=f"import:{csv_file.name}")
    merged = f", {report.merged_duplicates} duplicate rows merged" if report.merged_duplicates else ""
    out.print(f"Imported {csv_file}: {report.added} new, {report.updated} updated, "
              f"{report.unchanged} unchanged{merged}.")


@subscribers_app.command("list")
def subscribers_list() -> None:
    """List subscribers with their status.

    Example: digest subscribers list
    """
    people = _store(_settings()).list_subscribers()
    table = Table("E-mail", "Name", "Status")
    for person in people:
        table.add_row(person.email, person.name, person.status)
    out.print(table)
    out.print(f"{len(people)} subscribers")


def main() -> None:
    try:
        app(standalone_mode=False)
    except DigestError as error:
        err.print(f"error: {error}", markup=False, highlight=False)
        sys.exit(1)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as error:  # click's usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise


# The operations commands (run, status, approve, hold) live in their own module and register themselves on `app`.
from digest import cli_ops  # noqa: E402, F401
