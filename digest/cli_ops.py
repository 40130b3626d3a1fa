"""`digest run`, `digest status`, `digest approve`, `digest hold`: the operations commands, a thin shell over
digest.scheduler and digest.status. Registered on the `digest` app by digest.cli."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from digest.app.runs import Runtime, approve, hold
from digest.cli_app import _now, _settings, _store, app, out
from digest.events import configure_logging
from digest.scheduler import serve
from digest.status import digest_status, format_moment


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="Run whatever is due now, then exit (for system cron or a "
                                       "Kubernetes CronJob). Safe to start every few minutes.")] = False,
    log_format: Annotated[LogFormat, typer.Option("--log-format", help="One line per event: text or json.")]
    = LogFormat.text,
    metrics_port: Annotated[int | None, typer.Option("--metrics-port", help="Serve /metrics (Prometheus) and "
                                                     "/healthz on 127.0.0.1:PORT.")] = None,
) -> None:
    """Send every digest in schedule.yaml on its cron schedule until SIGTERM or Ctrl-C.

    A stop lets the message in flight finish; the next start resumes. Runs later than the digest's
    misfire_grace (default 6h) are skipped and logged, never sent late.

    Example: digest run --metrics-port 9464 --log-format json
    """
    settings = _settings()  # a bad schedule.yaml stops us here, before anything is scheduled
    rt = Runtime(settings=settings, store=_store(settings))
    rt.transport()  # a bad transport URL too
    configure_logging(log_format.value)
    raise typer.Exit(serve(rt, once=once, metrics_port=metrics_port))


@app.command()
def status() -> None:
    """Show each digest's next run (in its time zone), last edition, pending approvals and sources.

    Example: digest status
    """
    settings = _settings()
    for item in digest_status(settings, _store(settings), _now()):
        table = Table(title=f"{item.name}", title_justify="left", show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("Next run", item.local(item.next_run))
        table.add_row("Schedule", f"{item.cron} ({item.timezone.key}), misfire grace {item.misfire_grace}")
        if item.last_edition is None:
            table.add_row("Last edition", "none yet")
        else:
            c = item.counts
            queued = c.get("queued", 0) + c.get("sending", 0)
            table.add_row("Last edition", f"{item.last_edition}: sent {c.get('sent', 0)}, deferred "
                          f"{c.get('deferred', 0)}, failed {c.get('failed', 0)}"
                          + (f", not yet sent {queued}" if queued else ""))
        if item.stop_reason:
            table.add_row("Stopped", f"{item.stop_reason} (`digest send {item.name} --as-of {item.last_edition}` "
                          "continues)")
        if item.refused:
            table.add_row("Refused", f"{item.refused} subscriber{'' if item.refused == 1 else 's'} refused by the "
                          f"server (5xx): `digest send {item.name} --as-of {item.last_edition} --retry-failed`")
        for key, state, articles in item.drafts:
            table.add_row("Draft", f"{key} {state}, {articles} article{'' if articles == 1 else 's'}  "
                          f"(digest edition show {item.name} {key})")
        if item.last_missed is not None:
            table.add_row("Last missed run", item.local(item.last_missed))
        for record in item.approvals:
            auto = f", goes {item.local(record.auto_at)} unless held" if record.auto_at and record.state == "pending" \
                else ""
            table.add_row("Approval", f"{record.key} {record.state}{auto}  "
                          f"(digest approve {item.name} {record.key})")
        if not item.approvals:
            table.add_row("Approval", "nothing waiting")
        for source in item.sources:
            mark = {True: "[green]ok[/green]", False: "[red]failing[/red]", None: "[yellow]unknown[/yellow]"}[source.ok]
            # Escaped: a source's name or error (text from the web) is not rich markup.
            table.add_row("Source", f"{mark} {escape(source.source)}: {escape(source.detail)}")
        out.print(table)
        out.print()


@app.command("approve")
def approve_command(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    edition: Annotated[str | None, typer.Argument(help="The edition (its date); default: the one waiting.")] = None,
) -> None:
    """Release an edition that waits for approval, and send it now.

    Example: digest approve kultur 2026-04-06
    """
    settings = _settings()
    store = _store(settings)
    configure_logging("text")
    record, outcome = approve(Runtime(settings=settings, store=store), name, edition)
    stored = store.find_edition(name, record.key)
    counts = store.delivery_counts(stored.id) if stored is not None else {}
    out.print(f"{name} {record.key} approved; {outcome.kind.replace('_', ' ')}: sent {counts.get('sent', 0)}, "
              f"deferred {counts.get('deferred', 0)}, failed {counts.get('failed', 0)}.")
    if outcome.exit_code:
        out.print(outcome.reason, markup=False, highlight=False)
        raise typer.Exit(outcome.exit_code)


@app.command("hold")
def hold_command(name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")]) -> None:
    """Keep the edition that waits for approval from going out by itself (auto_after).

    Example: digest hold kultur
    """
    settings = _settings()
    configure_logging("text")
    record = hold(Runtime(settings=settings, store=_store(settings)), name)
    digest = settings.digest(name)
    scheduled = format_moment(record.scheduled_for, digest.timezone, digest.locale)
    out.print(f"{name} {record.key} (scheduled {scheduled}) is held; `digest approve {name} {record.key}` "
              "releases it.")
