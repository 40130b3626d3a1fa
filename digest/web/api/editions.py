"""/api/v1/digests: the digests, their editions with state and delivery counts, one edition with its articles and
archive address, the next scheduled run, and approving (which sends, in the background) or holding an edition."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from digest.api_keys import ApiKey
from digest.app.drafts import approve_edition, editable_draft, hold_edition
from digest.app.editions import PROVISIONAL, Prepared, key_day, prepare
from digest.config import DigestConfig
from digest.cron import next_run
from digest.errors import AllSourcesFailed, DigestError, DraftError
from digest.select import edition_key
from digest.web.api.problems import ApiProblem
from digest.web.api.schemas import (
    ArticleInfo,
    Deliveries,
    DigestInfo,
    EditionDetail,
    EditionState,
    EditionSummary,
    NextRun,
    Schedule,
)
from digest.web.api.security import require
from digest.web.api.state import ApiState, api_state

log = logging.getLogger("digest.api")

ReadKey = Annotated[ApiKey, Depends(require("editions:read"))]
ApproveKey = Annotated[ApiKey, Depends(require("editions:approve"))]

_DRAFT_PROBLEMS = {"not_found": (404, "not-found"), "too_long": (422, "validation")}


def _digest(state: ApiState, name: str) -> DigestConfig:
    digest = state.settings.digests.get(name)
    if digest is None:
        raise ApiProblem(404, "not-found", f"There is no digest {name!r}.")
    return digest


def _info(state: ApiState, name: str, digest: DigestConfig) -> DigestInfo:
    return DigestInfo(name=name, title=digest.title, description=digest.description,
                      schedule=Schedule(cron=digest.schedule.cron, timezone=digest.timezone.key),
                      next_run=next_run(digest, state.now()), approval=digest.approval is not None,
                      archive_url=f"{state.settings.public_url}/arkiv/{name}")


def _stored(state: ApiState, name: str, key: str) -> Prepared:
    """The stored edition `key` (a draft or one being or having been sent); 404 for anything else."""
    day = key_day(key)
    if day is None or (state.store.draft(name, key) is None and state.store.find_edition(name, key) is None):
        raise ApiProblem(404, "not-found", f"{name} has no stored edition {key!r} (editions are dates, YYYY-MM-DD; "
                         "one is stored once its run has come or an editor has acted on it).")
    prepared = prepare(state.settings, state.store, name, as_of=day, now=state.now())
    assert prepared.state != PROVISIONAL
    return prepared


def _summary(state: ApiState, name: str, prepared: Prepared) -> dict[str, object]:
    edition = prepared.edition
    stored = state.store.find_edition(name, edition.key)
    counts = state.store.delivery_counts(stored.id) if stored is not None else {}
    return {
        "digest": name, "key": edition.key, "date": edition.date, "state": EditionState(prepared.state),
        "scheduled_for": prepared.draft.scheduled_for if prepared.draft is not None else None,
        "subject": edition.subject, "articles": len(edition.articles),
        "deliveries": Deliveries(**{k: v for k, v in counts.items() if k in Deliveries.model_fields}),
        "archive_url": (f"{state.settings.public_url}/arkiv/{name}/{edition.key}"
                        if stored is not None and edition.articles else None),
    }


def _draft_problem(err: DigestError) -> ApiProblem:
    if isinstance(err, DraftError):
        status, slug = _DRAFT_PROBLEMS.get(err.reason, (409, "conflict"))
        return ApiProblem(status, slug, str(err))
    if isinstance(err, AllSourcesFailed):
        return ApiProblem(503, "unavailable", str(err), headers={"Retry-After": "300"})
    return ApiProblem(409, "conflict", str(err))


def _send_in_background(state: ApiState, name: str, key: str, editor: str, now: datetime) -> None:
    def send() -> None:
        try:
            outcome = approve_edition(state.settings, state.store, state.web.transport(), name, key, editor=editor,
                                      now=now)
            log.info("API approval of %s %s by %s: %s", name, key, editor, outcome.reason or outcome.kind)
        except DigestError as err:
            log.warning("API approval of %s %s by %s failed: %s", name, key, editor, err)
        except Exception:
            log.exception("API approval of %s %s by %s failed", name, key, editor)

    thread = threading.Thread(target=send, name=f"api-approve-{name}-{key}", daemon=True)
    state.sends[:] = [t for t in state.sends if t.is_alive()]
    state.sends.append(thread)
    thread.start()


def router() -> APIRouter:
    api = APIRouter(prefix="/v1/digests", tags=["digests and editions"])

    @api.get("", response_model=list[DigestInfo], summary="The digests")
    def digests(request: Request, _key: ReadKey) -> list[DigestInfo]:
        """Every digest in schedule.yaml: title, schedule, the next run, whether editions wait for approval."""
        state = api_state(request)
        return [_info(state, name, digest) for name, digest in state.settings.digests.items()]

    @api.get("/{name}", response_model=DigestInfo, summary="One digest",
             responses={404: {"description": "No such digest."}})
    def one_digest(request: Request, name: str, _key: ReadKey) -> DigestInfo:
        state = api_state(request)
        return _info(state, name, _digest(state, name))

    @api.get("/{name}/next-run", response_model=NextRun, summary="The next scheduled run",
             responses={404: {"description": "No such digest."}})
    def next_scheduled(request: Request, name: str, _key: ReadKey) -> NextRun:
        state = api_state(request)
        digest = _digest(state, name)
        moment = next_run(digest, state.now())
        return NextRun(digest=name, next_run=moment,
                       edition=None if moment is None else edition_key(moment.date()))

    @api.get("/{name}/editions", response_model=list[EditionSummary], summary="Editions with state and deliveries",
             responses={404: {"description": "No such digest."}})
    def editions(request: Request, name: str, _key: ReadKey,
                 limit: Annotated[int, Query(ge=1, le=200, description="At most this many, newest first.")] = 20
                 ) -> list[EditionSummary]:
        """The stored editions, newest first: drafts waiting (draft, approved, held, expired) and those being or
        having been sent (sending, sent, stopped), each with its delivery counts."""
        state = api_state(request)
        _digest(state, name)
        keys = {draft.edition.key for draft in state.store.unsent_drafts(name)}
        keys |= {stored.edition.key for stored in state.store.sent_editions(name, limit=limit)}
        chosen = sorted((key for key in keys if key_day(key) is not None), reverse=True)[:limit]
        return [EditionSummary(**_summary(state, name, _stored(state, name, key))) for key in chosen]  # type: ignore[arg-type]

    @api.get("/{name}/editions/{key}", response_model=EditionDetail, summary="One edition with its articles",
             responses={404: {"description": "No such digest or stored edition."}})
    def edition(request: Request, name: str, key: str, _key: ReadKey) -> EditionDetail:
        """Subject, preheader, the editors' introduction, the articles in the order they go out, the delivery counts
        and, once sent, the address of the public copy in the archive."""
        state = api_state(request)
        _digest(state, name)
        prepared = _stored(state, name, key)
        articles = [ArticleInfo(**article.to_json()) for article in prepared.edition.articles]  # type: ignore[arg-type]
        return EditionDetail(**_summary(state, name, prepared), preheader=prepared.edition.preheader,  # type: ignore[arg-type]
                             introduction=prepared.edition.introduction, article_list=articles)

    @api.post("/{name}/editions/{key}/approve", response_model=EditionSummary, status_code=202,
              summary="Approve an edition (it is sent)",
              responses={202: {"description": "Approved; the send runs in the background. Follow the edition's "
                               "state and deliveries at its address (Location)."},
                         404: {"description": "No such digest, or not an edition key."},
                         409: {"description": "Being sent or sent already, or nothing to send."},
                         503: {"description": "Every source failed; nothing was stored."}})
    def approve(request: Request, name: str, key: str,
                api_key: ApproveKey) -> JSONResponse:
        """Approve the stored draft as it is now and send it, as an editor's approval in the desk or `digest
        approve` does. An edition nobody has acted on yet is made from the sources first."""
        state = api_state(request)
        _digest(state, name)
        editor = f"api:{api_key.name}"
        now = state.now()
        try:
            editable_draft(state.settings, state.store, name, key, editor=editor, now=now)
        except DigestError as err:
            raise _draft_problem(err) from None
        summary = EditionSummary(**_summary(state, name, _stored(state, name, key)))  # type: ignore[arg-type]
        summary.state = EditionState.approved
        _send_in_background(state, name, key, editor, now)
        location = f"{request.scope.get('root_path', '')}/v1/digests/{name}/editions/{key}"
        return JSONResponse(summary.model_dump(mode="json"), status_code=202, headers={"Location": location})

    @api.post("/{name}/editions/{key}/hold", response_model=EditionSummary, summary="Hold an edition",
              responses={404: {"description": "No such digest, or not an edition key."},
                         409: {"description": "Being sent or sent already, or the digest has no approval rule."},
                         503: {"description": "Every source failed; nothing was stored."}})
    def hold(request: Request, name: str, key: str,
             api_key: ApproveKey) -> EditionSummary:
        """Keep the edition from going out by itself (auto_after); approving still sends it."""
        state = api_state(request)
        digest = _digest(state, name)
        if digest.approval is None:
            raise ApiProblem(409, "conflict", f"{name!r} has no approval rule; its editions go out on schedule and "
                             "there is nothing to hold back.")
        try:
            hold_edition(state.settings, state.store, name, key, editor=f"api:{api_key.name}", now=state.now())
        except DigestError as err:
            raise _draft_problem(err) from None
        return EditionSummary(**_summary(state, name, _stored(state, name, key)))  # type: ignore[arg-type]

    return api
