"""`digest edition show|refresh`: the stored edition of a digest, and rebuilding its draft from the sources on purpose.
Registered on the `digest` app by digest.cli."""

from __future__ import annotations

from typing import Annotated

import typer

from digest.app.drafts import refresh_draft
from digest.app.editions import prepare
from digest.cli_app import STATE_WORDS, _as_of, _local, _now, _settings, _store, app, err, out

edition_app = typer.Typer(help="Stored editions: their drafts, state and history.\n\n"
                          "Example: digest edition refresh kultur 2026-11-23", no_args_is_help=True)
app.add_typer(edition_app, name="edition")

EditionKey = Annotated[str | None, typer.Argument(help="The edition (its date, YYYY-MM-DD); default: the next one.")]


@edition_app.command("show")
def edition_show(name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
                 edition: EditionKey = None) -> None:
    """Show an edition as stored: state, subject, articles in order, introduction, and who changed what.

    Example: digest edition show kultur 2026-11-23
    """
    settings = _settings()
    tz = settings.digest(name).timezone
    prepared = prepare(settings, _store(settings), name, as_of=_as_of(edition), now=_now())
    shown = prepared.edition
    out.print(f"{name} {shown.key} ({STATE_WORDS.get(prepared.state, prepared.state)})", markup=False,
              highlight=False)
    if shown.subject:
        out.print(f"Subject: {shown.subject}", markup=False, highlight=False)
    if shown.introduction:
        out.print(f"Introduction: {shown.introduction}", markup=False, highlight=False)
    for number, article in enumerate(shown.articles, start=1):
        out.print(f"  {number}. {article.title} [{article.source}, {_local(article.published, tz)}]", markup=False,
                  highlight=False)
    for change in prepared.history:
        out.print(f"  {_local(change.at, tz)} {change.editor}: {change.detail}", markup=False, highlight=False)
    if prepared.skip_reason and not prepared.stored:
        out.print(prepared.skip_reason, markup=False, highlight=False)


@edition_app.command("refresh")
def edition_refresh(name: Annotated[str, typer.Argument(help="The digest, e.g. kultur.")],
                    edition: EditionKey = None) -> None:
    """Collect the sources again and rebuild the stored draft; lists what changed. It needs approval again.

    Example: digest edition refresh kultur 2026-11-23
    """
    settings = _settings()
    store = _store(settings)
    refreshed = refresh_draft(settings, store, name, edition, editor="cli", now=_now())
    for problem in refreshed.prepared.source_problems:
        err.print(f"warning: {problem}", markup=False, highlight=False)
    draft, changes = refreshed.draft, refreshed.changes
    key = draft.edition.key
    out.print(f"{name} {key} rebuilt from the sources: {len(draft.edition.articles)} articles "
              f"(revision {draft.revision}).", markup=False, highlight=False)
    for article in changes.new:
        out.print(f"  new: {article.title}", markup=False, highlight=False)
    for edit in changes.edited:
        out.print(f"  changed at the source ({', '.join(edit.fields)}): {edit.before.title} → {edit.after.title}",
                  markup=False, highlight=False)
    for article in changes.dropped:
        out.print(f"  gone from the sources: {article.title}", markup=False, highlight=False)
    if changes.nothing:
        out.print("  nothing changed", markup=False, highlight=False)
    approval = store.approval(name, key)
    if settings.digest(name).approval is not None:
        state = approval.state if approval is not None else "pending"
        out.print(f"Approval: {state}; `digest approve {name} {key}` sends it.", markup=False, highlight=False)
