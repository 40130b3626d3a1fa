"""`digest …`: a thin Typer shell over the application layer (digest.app). Errors become one line and exit 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from digest.app.editions import prepare
from digest.app.outcome import outcome_of
from digest.app.sending import resume_message, send_edition, send_test, write_preview
from digest.cli_app import STATE_WORDS, AsOf, _as_of, _local, _now, _settings, _store, app, err, out
from digest.cli_stats import ListFormat, list_subscribers
from digest.config import Settings
from digest.errors import DigestError
from digest.guards import check_send, over_smtp
from digest.models import Article, SendReport
from digest.render import mjml_source, render
from digest.sendview import SendView, summary_line
from digest.signing import signer_from_env
from digest.subscribers import read_subscriber_csv
from digest.transports import transport_from_url

subscribers_app = typer.Typer(help="Manage subscribers.\n\nExample: digest subscribers import list.csv",
                              no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")


@app.command()
def preview(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    as_of: AsOf = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Where to write the HTML (a .txt goes beside it).")]
    = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the preview in the default browser: the "
                                               "editors' desk when `digest serve` answers at base_url, else the "
                                               "HTML file.")] = False,
    mjml_file: Annotated[Path | None, typer.Option("--mjml", help="Also write the edition's MJML source here (for "
                                                   "template work, or to compile with the official MJML).")] = None,
) -> None:
    """Render the next edition (or one already sent) to an HTML file and a text file, and print the path.

    Example: digest preview kultur --as-of 2019-07-01 --out preview.html --open
    """
    settings = _settings()
    store = _store(settings)
    prepared = prepare(settings, store, name, as_of=_as_of(as_of), now=_now())
    _warn_sources(prepared.source_problems)
    edition = prepared.edition
    if prepared.skip_reason and not prepared.stored:
        out.print(prepared.skip_reason)
        if open_browser:
            _open_preview(settings, name, as_of, None)
        return
    rendered = render(settings, settings.digest(name), edition)
    target = out_file or Path("outbox") / "preview" / f"{name}-{edition.key}.html"
    html_path, txt_path = write_preview(settings, rendered, target)
    guards = check_send(settings, html_bytes=rendered.html_bytes, smtp=over_smtp(settings.transport),
                        signed=signer_from_env(settings.digest(name).sender.domain) is not None)
    for line in guards.lines(sending=False):
        err.print(line, markup=False, highlight=False)
    if mjml_file is not None:
        _write_text(mjml_file, mjml_source(settings, settings.digest(name), edition))
        err.print(f"MJML source in {mjml_file}", markup=False, highlight=False)
    state = STATE_WORDS.get(prepared.state, prepared.state)
    err.print(f"{name} {edition.key}: {len(edition.articles)} articles, {rendered.html_bytes / 1024:.0f} KB "
              f"HTML ({state}); text part in {txt_path}")
    print(html_path)
    if open_browser:
        _open_preview(settings, name, as_of, html_path)


def _write_text(path: Path, text: str) -> None:
    """Whole or not at all: a temporary file beside the target, renamed over it."""
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _open_preview(settings: Settings, name: str, as_of: str | None, html_path: Path | None) -> None:
    import webbrowser

    from digest.web.desk import desk_is_serving, desk_url

    url = desk_url(settings, name, as_of)
    if desk_is_serving(settings):
        where = url
    elif html_path is not None:
        where = html_path.resolve().as_uri()
    else:
        err.print(f"Nothing to open: `digest serve` does not answer at {settings.public_url}.")
        return
    opened = webbrowser.open(where)
    err.print(f"{'Opened' if opened else 'Could not open a browser for'} {where}", markup=False, highlight=False)


@app.command()
def send(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    as_of: AsOf = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Build and count every message; send nothing.")]
    = False,
    to: Annotated[str | None, typer.Option("--to", help="Send one [TEST] copy of the stored edition to this "
                                          "address; record no delivery.")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Also try again the subscribers a server "
                                               "refused (5xx) in an earlier run.")] = False,
) -> None:
    """Send the edition to every subscriber who has not had it yet. Running it again sends nothing twice.

    Exit code 0 when everyone in the audience has the edition, 2 when some were sent and some still lack it, 1 when
    none were sent and some lack it; the last line says why.

    Example: digest send kultur --as-of 2019-07-01
    """
    settings = _settings()
    store = _store(settings)
    transport = transport_from_url(settings.transport, root=settings.root)
    if to:
        report = send_test(settings, store, transport, name, as_of=_as_of(as_of), now=_now(), to=to)
    else:
        with SendView(err, description="Building" if dry_run else "Sending") as view:
            report = send_edition(settings, store, transport, name, as_of=_as_of(as_of), now=_now(),
                                  dry_run=dry_run, progress=view.progress, notice=view.notice,
                                  retry_failed=retry_failed)
    _print_report(report, test_copy=bool(to))
    outcome = outcome_of(report)
    if outcome.exit_code:
        out.print(outcome.reason, markup=False, highlight=False)  # the last line says why
        raise typer.Exit(outcome.exit_code)


def _warn_sources(problems: list[str]) -> None:
    """Failed sources go to stderr as warnings: the edition is made without them, and the editor should know."""
    for problem in problems:
        err.print(f"warning: {problem}", markup=False, highlight=False)


def _print_report(report: SendReport, *, test_copy: bool) -> None:
    _warn_sources(report.source_problems)
    for line in report.guards:
        err.print(line, markup=False, highlight=False)
    if report.guard_refused:
        return  # the outcome's last line says so
    if report.articles == 0:
        out.print(report.problems[0] if report.problems else "Nothing to send.")
        return
    if test_copy:
        out.print(f"Test copy of {report.digest} {report.edition_key} sent via {report.destination} "
                  "(not recorded as a delivery).")
        return
    if report.busy:
        out.print(report.problems[0])
        return
    if report.dry_run:
        out.print(f"Dry run: {report.digest} {report.edition_key} with {report.articles} articles would go to "
                  f"{report.sent} subscribers. Nothing was sent.")
        out.print(summary_line(report))
        return
    out.print(f"{report.digest} {report.edition_key}: {report.articles} articles; sent {report.sent}, "
              f"deferred {report.deferred}, failed {report.failed}"
              + (f", bounced {report.bounced}" if report.bounced else "")
              + (f", already sent before {report.skipped_already_sent}" if report.skipped_already_sent else "")
              + ".")
    if report.resumed:
        out.print(resume_message(report))
    if report.sent:
        out.print(summary_line(report))
    if report.sent:
        out.print(f"Messages: {report.destination}")
    for problem in report.problems[:20]:
        err.print(f"  {problem}")
    outcome = outcome_of(report)
    if outcome.ok and not report.sent:
        out.print(outcome.reason)


@app.command("collect")
def collect_command(
    name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
    as_of: AsOf = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the articles as a JSON list.")] = False,
    explain: Annotated[bool, typer.Option("--explain", help="Also list what was left out, and why.")] = False,
) -> None:
    """Show what the next edition would hold: fetch every source, select, and print the articles. Sends nothing.

    Example: digest collect kultur --explain
    """
    settings = _settings()
    store = _store(settings)
    prepared = prepare(settings, store, name, as_of=_as_of(as_of), now=_now())
    edition = prepared.edition
    tz = settings.digest(name).timezone
    if as_json:
        print(json.dumps([_article_json(article) for article in edition.articles], ensure_ascii=False, indent=2))
        for report in prepared.reports:
            err.print(("" if report.ok else "warning: ") + report.describe(), markup=False, highlight=False)
        if explain:
            for exclusion in prepared.excluded:
                article = exclusion.article
                err.print(f"left out ({exclusion.reason}): {article.title} [{article.source}, "
                          f"{_local(article.published, tz)}]: {exclusion.detail}", markup=False, highlight=False)
        return

    state = STATE_WORDS.get(prepared.state, prepared.state)
    out.print(f"{name} {edition.key} ({state}): {len(edition.articles)} articles, window "
              f"{_local(edition.since, tz)} – {_local(edition.until, tz)}", markup=False, highlight=False)
    if edition.articles:
        table = Table("Published", "Source", "Title")
        for article in edition.articles:
            table.add_row(_local(article.published, tz), article.source, article.title)
        out.print(table)
    if prepared.skip_reason and not prepared.stored:
        out.print(prepared.skip_reason, markup=False, highlight=False)
    if prepared.state in ("draft", "approved", "held"):
        out.print(f"This is the stored draft; `digest edition refresh {name} {edition.key}` collects it again.",
                  markup=False, highlight=False)
    if prepared.reports:
        out.print("Sources:")
        for report in prepared.reports:
            mark = "ok  " if report.ok else "FAIL"
            out.print(f"  {mark} {report.describe()}", markup=False, highlight=False)
    if explain:
        out.print(f"Left out: {len(prepared.excluded)}" if prepared.excluded else "Nothing was left out.")
        for exclusion in prepared.excluded:
            article = exclusion.article
            out.print(f"  {exclusion.reason}: {article.title} [{article.source}, {_local(article.published, tz)}]: "
                      f"{exclusion.detail}", markup=False, highlight=False)


def _article_json(article: Article) -> dict[str, str | None]:
    """The JSON contract of `digest collect --json`: exactly these fields."""
    return {
        "url": article.url,
        "title": article.title,
        "teaser": article.teaser,
        "published": article.published.isoformat(),
        "kicker": article.kicker,
        "image": article.image,
        "source": article.source,
    }




@subscribers_app.command("import")
def subscribers_import(
    csv_file: Annotated[Path, typer.Argument(help="CSV with the columns email,name.")],
    confirm: Annotated[bool, typer.Option("--confirm", help="Send each new address a confirmation e-mail; only "
                                          "those who confirm become subscribers.")] = False,
    digests: Annotated[list[str] | None, typer.Option("--digest", help="Subscribe to this digest (repeatable; "
                                                      "default: every digest in schedule.yaml).")] = None,
) -> None:
    """Add subscribers from a CSV file (email,name). A file with any bad row imports nothing.

    The import counts as consent the organisation holds (source and time are recorded), unless --confirm asks
    each address first. Unsubscribed, bounced, complained and forgotten addresses are never resubscribed.

    Example: digest subscribers import examples/subscribers.csv
    """
    rows = read_subscriber_csv(csv_file)
    settings = _settings()
    chosen = digests or list(settings.digests)
    for name in chosen:
        settings.digest(name)  # an unknown digest is an error before anything is stored
    store = _store(settings)
    source = f"import:{csv_file.name}"
    if confirm:
        from digest.signup import import_asking_for_confirmation
        from digest.tokens import resolve_secret

        transport = transport_from_url(settings.transport, root=settings.root)
        asked = import_asking_for_confirmation(settings, store, transport, resolve_secret(store), rows,
                                               source=source, digests=chosen, now=_now())
        out.print(f"Asked {csv_file}: {asked.confirmations_sent} confirmation e-mails sent via "
                  f"{transport.description}, {asked.confirmations_recent} already sent within the hour, "
                  f"{asked.already_subscribed} already subscribed. Nobody is subscribed until they confirm.")
        _print_suppressed(asked.suppressed)
        for problem in asked.problems[:20]:
            err.print(f"  {problem}")
        if asked.problems:
            raise typer.Exit(2 if asked.confirmations_sent else 1)
        return
    report = store.import_subscribers(rows, source=source, digests=chosen)
    merged = f", {report.merged_duplicates} duplicate rows merged" if report.merged_duplicates else ""
    out.print(f"Imported {csv_file}: {report.added} new, {report.updated} updated, "
              f"{report.unchanged} unchanged{merged}.")
    _print_suppressed(list(report.suppressed))


def _print_suppressed(addresses: list[str]) -> None:
    if not addresses:
        return
    from digest.consent import mask

    out.print(f"Not resubscribed: {len(addresses)} addresses on the suppression list (unsubscribed, bounced, "
              f"complained or forgotten): {', '.join(mask(a) for a in addresses[:10])}"
              + (" …" if len(addresses) > 10 else "") + ".")


@subscribers_app.command("list")
def subscribers_list(
    status: Annotated[str | None, typer.Option("--status", help="Only this status: active, unsubscribed, "
                                               "bounced or complained.")] = None,
    digest: Annotated[str | None, typer.Option("--digest", help="Only those who receive this digest.")] = None,
    search: Annotated[str | None, typer.Option("--search", help="Part of the address or the name.")] = None,
    fmt: Annotated[ListFormat, typer.Option("--format", help="table, csv or json.")] = ListFormat.table,
) -> None:
    """List subscribers with their status, by address.

    Example: digest subscribers list --status active --digest kultur --search @example.org --format csv
    """
    list_subscribers(status, digest, search, fmt)


@subscribers_app.command("export")
def subscribers_export(
    address: Annotated[str, typer.Argument(help="The e-mail address.")],
) -> None:
    """Print everything stored about an address as JSON (profile, consent, deliveries, suppression).

    Example: digest subscribers export kari.nordmann@example.org > kari.json
    """
    import json

    data = _store(_settings()).export_address(_address(address))
    print(json.dumps(data, ensure_ascii=False, indent=2))


@subscribers_app.command("forget")
def subscribers_forget(
    address: Annotated[str, typer.Argument(help="The e-mail address.")],
) -> None:
    """Erase everything stored about an address; keep only a salted hash so it is never mailed again.

    Example: digest subscribers forget kari.nordmann@example.org
    """
    from digest.consent import mask

    found = _store(_settings()).forget_address(_address(address), now=_now())
    if found:
        out.print(f"Forgot {mask(address)}: profile, consent records and deliveries erased; a salted hash stays "
                  "on the suppression list, so the address is never mailed again.")
    else:
        out.print(f"Nothing was stored about {mask(address)}; it is now on the suppression list (as a salted "
                  "hash), so it is never mailed.")


def _address(address: str) -> str:
    from digest.subscribers import normalise_address

    return normalise_address(address)  # AddressError (one clean line) when it is not an address


bounces_app = typer.Typer(help="Returned mail.\n\nExample: digest bounces ingest /var/mail/bounces",
                          no_args_is_help=True)
app.add_typer(bounces_app, name="bounces")


@bounces_app.command("ingest")
def bounces_ingest(
    path: Annotated[Path, typer.Argument(help="A Maildir folder or an mbox file of returned mail.")],
) -> None:
    """Read bounces (RFC 3464), complaints (ARF) and unsubscribe e-mails, and update the subscribers.

    Hard bounces (5.x.x) mark the address bounced; soft ones (4.x.x) are counted, and three in a row mark it
    bounced; complaints mark it complained; mails to the List-Unsubscribe address with a valid token unsubscribe.
    Running it again on the same mailbox changes nothing more.

    Example: digest bounces ingest ~/Maildir/.bounces
    """
    from digest.bounces import ingest
    from digest.tokens import resolve_secret

    settings = _settings()
    store = _store(settings)
    summary = ingest(store, path, secret=resolve_secret(store), all_digests=list(settings.digests), now=_now())
    for line in summary.lines():
        out.print(line, markup=False, highlight=False)
    for note in summary.notes[:50]:
        err.print(f"  {note}", markup=False, highlight=False)


editors_app = typer.Typer(help="Editors of the desk (/redaksjon in `digest serve`).\n\n"
                          "Example: digest editors add kari", no_args_is_help=True)
app.add_typer(editors_app, name="editors")


@editors_app.command("add")
def editors_add(
    name: Annotated[str, typer.Argument(help="The editor's login name, e.g. kari.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line "
                                                 "of standard input instead of asking (for scripts).")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Set a new password for an editor who exists.")]
    = False,
) -> None:
    """Add an editor who may log in to the desk; asks for the password twice. Only a salted hash is stored.

    Example: digest editors add kari
    """
    from digest.editors import MIN_PASSWORD_LENGTH, add_editor, check_name

    check_name(name)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt(f"Password for {name} (at least {MIN_PASSWORD_LENGTH} characters)", hide_input=True,
                                confirmation_prompt=True)
    added = add_editor(_store(_settings()), name, password, now=_now(), replace=replace)
    out.print(f"Editor {added} can now log in at /redaksjon.", markup=False, highlight=False)


@editors_app.command("list")
def editors_list() -> None:
    """List the editors of the desk.

    Example: digest editors list
    """
    editors = _store(_settings()).list_editors()
    for name, created in editors:
        out.print(f"{name}  (added {created.strftime('%Y-%m-%d')})", markup=False, highlight=False)
    out.print(f"{len(editors)} editors")


@editors_app.command("remove")
def editors_remove(
    name: Annotated[str, typer.Argument(help="The editor's login name.")],
) -> None:
    """Remove an editor; their open sessions stop working at once.

    Example: digest editors remove kari
    """
    from digest.editors import EditorError, check_name

    name = check_name(name)
    if not _store(_settings()).remove_editor(name):
        raise EditorError(f"no editor named {name!r}")
    out.print(f"Removed editor {name}.", markup=False, highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (loopback unless told otherwise).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
) -> None:
    """Run the web app: one-click unsubscribe, sign-up (/abonner), preferences, the editors' desk (/redaksjon) and
    the archive (/arkiv). Links use base_url.

    Example: digest serve --port 8000
    """
    from digest.events import configure_logging
    from digest.web import create_app
    from digest.web.server import listen
    from digest.web.server import serve as run_server

    settings = _settings()
    listener = listen(host, port)  # a bad port or host, or a port in use: one line, before "Serving on"
    store = _store(settings)
    configure_logging("text")  # one line per event: API requests (by key name), sign-ups, …
    err.print(f"Serving on http://{host}:{port} (links in e-mails point to {settings.public_url})")
    run_server(create_app(settings, store), host=host, port=port, listener=listener)


def main() -> None:
    try:
        # Without standalone mode click hands back the code of typer.Exit instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except DigestError as error:
        err.print(f"error: {error}", markup=False, highlight=False)
        sys.exit(1)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as error:
        # Usage errors (bad option values) come from click, which typer may vendor: recognise them by shape.
        if hasattr(error, "show") and isinstance(getattr(error, "exit_code", None), int):
            error.show()
            sys.exit(error.exit_code)
        raise


# The operations and edition commands live in their own modules and register themselves on `app`.
from digest import cli_apikeys, cli_editions, cli_ops  # noqa: E402, F401
