"""What the edition page shows of the stored draft: its state in words, the articles in their order with what an
editor may do to each, the introduction, the last refresh's changes and the history, all in bokmål."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from babel.dates import format_datetime

from digest.app import outcome as kinds
from digest.app.drafts import MAX_INTRODUCTION
from digest.app.editions import Prepared, approval_state
from digest.app.outcome import Outcome
from digest.changes import Changes
from digest.config import DigestConfig
from digest.errors import DraftError
from digest.models import Article, DraftChange
from digest.store import Store
from digest.web.sends import SendJob

# State (digest.app.editions) → what the page says it is, and a sentence on what it means.
STATE_WORDS: dict[str, tuple[str, str]] = {
    "provisional": ("Foreløpig", "Utgaven er ikke lagret ennå: den hentes fra kildene hver gang siden vises. Den "
                                 "lagres som utkast når du endrer den, sender en test eller godkjenner den."),
    "draft": ("Utkast", "Artiklene og rekkefølgen er lagret; bare du og de andre i redaksjonen endrer dem."),
    "approved": ("Godkjent", "Utgaven er godkjent og går ut slik den står her."),
    "held": ("Holdt tilbake", "Utgaven går ikke ut av seg selv; «Godkjenn og send» sender den."),
    "expired": ("Utløpt", "Utgaven ble ikke godkjent i tide og går ikke ut av seg selv."),
    "sending": ("Sendes", "Utgaven sendes nå. Siden oppdaterer seg selv når utsendingen er ferdig."),
    "sent": ("Sendt", "Alle i målgruppen har fått utgaven."),
    "stopped": ("Stoppet", "Utsendingen stoppet før alle hadde fått utgaven."),
}
EDITABLE = ("provisional", "draft", "approved", "held", "expired")
APPROVABLE = ("provisional", "draft", "approved", "held", "expired")

# DraftError.reason → the sentence the editor reads.
REFUSALS = {
    "not_found": "Fant ikke utgaven. Last siden på nytt og prøv igjen.",
    "frozen": "Utgaven sendes eller er sendt, så den kan ikke endres lenger.",
    "unknown_article": "Artikkelen er ikke i utgaven lenger. Last siden på nytt og se hvordan den står nå.",
    "too_few": "Utgaven må ha minst én artikkel, så den siste kan ikke fjernes.",
    "too_long": f"Innledningen kan ikke være lengre enn {MAX_INTRODUCTION} tegn. Den ble ikke lagret.",
    "conflict": "Noen andre endret utgaven samtidig. Se hvordan den står nå, og prøv igjen.",
}


def refusal(err: DraftError) -> str:
    return REFUSALS.get(err.reason, f"Endringen ble ikke gjort: {err}.")


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def outcome_words(outcome: Outcome) -> tuple[bool, str]:
    """A send's outcome (digest.app.outcome) as the desk says it: ok, and one or two sentences."""
    report = outcome.report
    sent = report.sent if report else 0
    if outcome.kind == kinds.SENT:
        return True, f"Utgaven er sendt: {plural(sent, 'e-post', 'e-poster')} gikk ut nå, og alle i målgruppen har den."
    if outcome.kind == kinds.UP_TO_DATE:
        return True, "Alle abonnentene hadde allerede denne utgaven; ingenting nytt ble sendt."
    if outcome.kind == kinds.NOTHING_NEW:
        return True, "Det var ingenting å sende."
    if outcome.kind == kinds.BUSY:
        return True, "En annen prosess sender denne utgaven akkurat nå; den gjør jobben ferdig."
    if outcome.kind == kinds.AWAITING_APPROVAL:
        return True, "Utgaven venter på godkjenning."
    if report is not None and outcome.kind in (kinds.PARTIAL, kinds.STOPPED, kinds.INTERRUPTED):
        parts = [f"{plural(sent, 'e-post', 'e-poster')} sendt"]
        if report.remaining:
            parts.append(f"{plural(report.remaining, 'abonnent venter', 'abonnenter venter')} fortsatt")
        if report.refused:
            parts.append(f"{plural(report.refused, 'adresse', 'adresser')} avvist av e-posttjeneren")
        if report.bounced:
            parts.append(f"{plural(report.bounced, 'adresse', 'adresser')} finnes ikke og får ikke mer e-post")
        text = "Utsendingen stoppet før alle hadde fått utgaven: " + ", ".join(parts) + "."
        if report.paused:
            text += f" Årsak: {report.paused}."
        command = f"digest send {report.digest} --as-of {report.edition_key}"
        if report.remaining:
            text += f" «{command}» fortsetter der utsendingen stoppet."
        if report.refused:
            text += f" «{command} --retry-failed» prøver de avviste adressene igjen."
        return False, text
    return outcome.ok, outcome.reason


def sending_words(job: SendJob | None) -> str:
    """What the page says while a send it started is under way."""
    if job is None or not job.total:
        return "Utgaven sendes nå …"
    return f"Utgaven sendes nå: {job.sent} av {plural(job.total, 'e-post', 'e-poster')} er sendt."


@dataclass(frozen=True, kw_only=True)
class WaitingDraft:
    """A stored draft no send has started yet, as the desk's list of digests names it."""

    key: str
    state_word: str
    articles: int


def waiting_drafts(store: Store, name: str) -> tuple[WaitingDraft, ...]:
    """The digest's stored drafts not sent yet, in the same states `digest status` gives them."""
    return tuple(WaitingDraft(key=draft.edition.key, articles=len(draft.edition.articles),
                              state_word=STATE_WORDS[approval_state(store.approval(name, draft.edition.key))][0])
                 for draft in store.unsent_drafts(name))


@dataclass(frozen=True, kw_only=True)
class ArticleRow:
    position: int  # 1-based
    article: Article
    first: bool
    last: bool


@dataclass(frozen=True, kw_only=True)
class HistoryRow:
    at: datetime
    when: str
    who: str
    what: str


@dataclass(frozen=True, kw_only=True)
class DraftView:
    key: str
    state: str
    state_word: str
    state_sentence: str
    articles: tuple[ArticleRow, ...]
    introduction: str
    editable: bool
    can_approve: bool
    can_hold: bool
    sending: bool
    sending_text: str
    revision: int | None
    history: tuple[HistoryRow, ...]
    stop_reason: str | None = None
    refresh: Changes | None = None
    send_result: SendJob | None = None
    max_introduction: int = MAX_INTRODUCTION


def moment_words(moment: datetime, digest: DigestConfig) -> str:
    return format_datetime(moment, "d. MMMM y 'kl.' HH:mm", tzinfo=digest.timezone, locale=digest.locale)


def history_rows(history: tuple[DraftChange, ...], digest: DigestConfig) -> tuple[HistoryRow, ...]:
    """Newest first: the latest change is the one an editor looks for."""
    rows = [HistoryRow(at=change.at, when=moment_words(change.at, digest),
                       who="automatisk" if change.editor == "system" else change.editor, what=change.detail)
            for change in history]
    return tuple(reversed(rows))


def draft_view(prepared: Prepared, digest: DigestConfig, *, job: SendJob | None,
               refresh: tuple[int, Changes] | None) -> DraftView | None:
    """The draft part of the edition page for `prepared`, or None when there is no
    edition to shape (nothing new, or fewer articles than min_articles and nothing stored)."""
    edition = prepared.edition
    state = prepared.state
    draft = prepared.draft
    if not edition.articles and draft is None:
        return None
    sending = state == "sending" or (job is not None and not job.done)
    if sending:
        state = "sending"
    word, sentence = STATE_WORDS.get(state, (state, ""))
    if state == "draft" and digest.approval is not None:
        sentence += " Den venter på godkjenning før den går ut."
    articles = edition.articles
    rows = tuple(ArticleRow(position=index + 1, article=article, first=index == 0, last=index == len(articles) - 1)
                 for index, article in enumerate(articles))
    revision = draft.revision if draft is not None else None
    shown_refresh = refresh[1] if refresh is not None and refresh[0] == revision else None
    return DraftView(
        key=edition.key,
        state=state,
        state_word=word,
        state_sentence=sentence,
        articles=rows,
        introduction=edition.introduction,
        editable=state in EDITABLE,
        can_approve=state in APPROVABLE,
        can_hold=digest.approval is not None and state in ("draft", "approved"),
        sending=sending,
        sending_text=sending_words(job if job is not None and not job.done else None),
        revision=revision,
        history=history_rows(prepared.history, digest),
        stop_reason=draft.stop_reason if draft is not None and state == "stopped" else None,
        refresh=shown_refresh,
        send_result=job if job is not None and job.done else None,
    )
