"""The desk's numbers per digest (`/redaksjon/{digest}/tall`): the same figures as `digest stats`, two charts drawn
on the server (SVG, pygal), each with its data as a table beside it and as CSV. Behind the editors' login; no
tracking behind the numbers (digest/stats.py says where they come from)."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from digest.charts import EDITION_COLUMNS, WEEK_COLUMNS, edition_rows, editions_chart, list_chart, week_rows
from digest.stats import WINDOW, DigestStats, digest_stats
from digest.web.auth import DESK, require_editor
from digest.web.context import web_state
from digest.web.desk import DESK_CSP, _digest, _page

router = APIRouter()

NUMBERS = DESK + "/{name}/tall"


def _stats(request: Request, name: str) -> DigestStats:
    require_editor(request)
    _digest(request, name)
    state = web_state(request)
    return digest_stats(state.settings, state.store, name, now=state.now())


@router.get(NUMBERS, response_class=HTMLResponse)
def numbers_page(request: Request, name: str) -> HTMLResponse:
    stats = _stats(request, name)
    digest = _digest(request, name)
    return _page(request, "desk_numbers.html", heading=f"{digest.title}: tall", name=name, stats=stats,
                 last=stats.editions[0] if stats.editions else None, window_days=WINDOW.days,
                 edition_columns=EDITION_COLUMNS, edition_rows=edition_rows(stats, digest.locale),
                 week_columns=WEEK_COLUMNS, week_rows=week_rows(stats, digest.locale), base=f"{DESK}/{name}/tall")


def _svg(body: str) -> Response:
    # A chart is a picture: no script of its own runs (CSP), and it may be kept for a minute.
    return Response(body, media_type="image/svg+xml",
                    headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                             "Cache-Control": "private, max-age=60"})


@router.get(NUMBERS + "/utgaver.svg")
def editions_svg(request: Request, name: str) -> Response:
    return _svg(editions_chart(_stats(request, name), _digest(request, name).locale))


@router.get(NUMBERS + "/uker.svg")
def weeks_svg(request: Request, name: str) -> Response:
    return _svg(list_chart(_stats(request, name)))


def _csv(filename: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    # With a byte-order mark, so that Excel reads æøå as UTF-8.
    return Response("\ufeff" + buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Content-Security-Policy": DESK_CSP})


@router.get(NUMBERS + "/utgaver.csv")
def editions_csv(request: Request, name: str) -> Response:
    stats = _stats(request, name)
    return _csv(f"{name}-utgaver.csv", EDITION_COLUMNS, edition_rows(stats, _digest(request, name).locale))


@router.get(NUMBERS + "/uker.csv")
def weeks_csv(request: Request, name: str) -> Response:
    return _csv(f"{name}-uker.csv", WEEK_COLUMNS, week_rows(_stats(request, name), _digest(request, name).locale))
