"""The hostile corpus (tests/hostile_corpus.py) served from 127.0.0.1 and collected beside healthy feeds.

No traceback, each failure a one-line warning naming its source, every healthy source in the collection, nothing a
reader should not get (markup, scripts, control characters, a local file) in any article, and the collection ends:
every source is fetched and read within its own timeout.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from datetime import UTC, datetime

import pytest

from digest.config import load_settings
from digest.sources import Collection, collect
from digest.sources.isolate import run_isolated, warm_up
from digest.sources.normalise import plain_text
from digest.store import Store
from tests.conftest import REPO
from tests.hostile_corpus import CASES, EITHER, FAIL, HEALTHY, OK, HostileServer, sources_yaml

NOW = datetime(2019, 6, 30, 10, 0, tzinfo=UTC)
HOSTILE_TIMEOUT = 20.0
HEALTHY_TIMEOUT = 20.0
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def schedule_with(tmp_path, sources: str):
    text = (REPO / "schedule.yaml").read_text(encoding="utf-8")
    path = tmp_path / "schedule.yaml"
    path.write_text(text.replace("      - type: files\n        path: content/\n", sources), encoding="utf-8")
    return load_settings(path, environ={})


def collect_without_stalling(settings, store) -> Collection:
    """collect() in a thread: a stall fails the test instead of hanging the suite."""
    outcome: list[Collection | BaseException] = []

    def work() -> None:
        try:
            outcome.append(collect(settings, settings.digest("kultur"), store=store, now=NOW))
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    # Generous: the point is that it ends (every source has its deadline), not how fast; bench/hostile.py times it.
    thread.join(HEALTHY_TIMEOUT + 60)
    assert not thread.is_alive(), "collect() did not end"
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


@pytest.fixture(scope="module")
def hostile_collection(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("hostile")
    with HostileServer() as server:
        settings = schedule_with(tmp_path, sources_yaml(server, hostile_timeout=HOSTILE_TIMEOUT,
                                                        healthy_timeout=HEALTHY_TIMEOUT))
        store = Store.open(f"sqlite:///{tmp_path / 'digest.db'}")
        # The parsers' process starts once per process (a second or two on a busy machine); a long-running
        # `digest run` pays it once, and here it must not eat the 2 s of the hogs that must run out of time.
        warm_up()
        run_isolated(plain_text, {"markup": "<p>klar</p>"}, deadline=time.monotonic() + 60, url="warm-up")
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        logging.getLogger().addHandler(handler)
        try:
            collection = collect_without_stalling(settings, store)
        finally:
            logging.getLogger().removeHandler(handler)
            store.close()
    return collection, records


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)


def test_no_traceback_and_every_failure_is_a_warning_naming_its_source(hostile_collection):
    collection, records = hostile_collection
    assert not [record for record in records if record.exc_info], "a source raised instead of failing cleanly"
    reports = {report.name: report for report in collection.reports}
    assert set(reports) == {case.name for case in CASES} | set(HEALTHY)
    for report in collection.failures:
        line = report.describe()
        assert report.name in line and "\n" not in line and "Traceback" not in line
        assert any(record.levelno == logging.WARNING and report.name in record.getMessage() for record in records)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_case_gives_articles_or_fails_alone(hostile_collection, case):
    collection, _ = hostile_collection
    report = next(report for report in collection.reports if report.name == case.name)
    if case.expect == OK:
        assert report.ok and report.articles > 0, report.describe()
    elif case.expect == FAIL:
        assert not report.ok, report.describe()
    else:
        assert case.expect == EITHER
    articles = [article for article in collection.articles if article.source == case.name]
    assert len(articles) == (report.articles if report.ok else 0)
    for article in articles:
        for text in (article.title, article.teaser, article.image_alt or "", article.kicker or ""):
            assert not _TAG.search(text), text[:200]
            assert not _CONTROL.search(text), text[:200]
            assert "javascript:" not in text.lower() or "javascript:" in case.name
            for forbidden in case.never:
                assert forbidden not in text
        assert article.url.startswith(("http://", "https://"))
        assert article.image is None or article.image.startswith(("http://", "https://"))
        assert article.published.tzinfo is not None


def test_an_impossible_date_loses_only_the_date(hostile_collection):
    collection, _ = hostile_collection
    for case in CASES:
        if not case.name.startswith("date-") or case.name.startswith("date-atom") or case.name == "date-epoch":
            continue
        dated = [article for article in collection.articles
                 if article.source == case.name and article.title.startswith("Datert sak")]
        assert len(dated) == 1, case.name
        ordinary = [article for article in collection.articles
                    if article.source == case.name and article.title == "Vanlig sak"]
        assert ordinary and ordinary[0].published == datetime(2019, 6, 28, 7, 30, tzinfo=UTC)
        if case.name in {"date-9999-minus-14", "date-zeros", "date-rfc822-9999", "date-year-99999"}:
            assert dated[0].published == NOW  # dated when first seen


def test_every_healthy_source_is_in_the_collection(hostile_collection):
    collection, _ = hostile_collection
    for name in HEALTHY:
        report = next(report for report in collection.reports if report.name == name)
        assert report.ok and report.articles == 3, report.describe()
        titles = {article.title for article in collection.articles if article.source == name}
        assert titles == {f"Frisk sak {name.removeprefix('healthy-')}-{n}" for n in range(3)}


def test_slow_sources_fail_with_their_own_timeout(hostile_collection):
    collection, _ = hostile_collection
    reports = {report.name: report for report in collection.reports}
    for name in ("hangs", "slow-headers", "trickle-body"):
        assert "no answer within 3 s" in (reports[name].error or ""), reports[name].describe()
    for name in ("many-items", "many-enclosures", "billion-laughs"):  # a parse that runs over is killed
        error = reports[name].error or ""
        # On a busy machine the fetch itself may take the 2 s; either way the time limit is what stopped it.
        assert "within 2 s" in error or "ran out of time while reading it" in error, error


def test_dates_at_the_ends_of_time_do_not_stop_send(project, run_cli, monkeypatch):
    date_cases = [case for case in CASES if case.name.startswith(("date-", "page-date-"))]
    with HostileServer(date_cases) as server:
        text = (project / "schedule.yaml").read_text(encoding="utf-8")
        sources = sources_yaml(server, hostile_timeout=5, healthy_timeout=5, cases=date_cases)
        (project / "schedule.yaml").write_text(text.replace("      - type: files\n        path: content/\n", sources),
                                               encoding="utf-8")
        (project / "liste.csv").write_text("email,name\nkari@example.org,Kari\n", encoding="utf-8")
        assert run_cli("subscribers", "import", "liste.csv").exit_code == 0
        for command in (["collect", "kultur", "--json"], ["preview", "kultur", "--out", "p.html"],
                        ["send", "kultur"]):
            result = run_cli(*command)
            assert result.exit_code == 0, (command, result.stderr)
            assert "Traceback" not in result.stderr + result.stdout
    assert "Datert sak 1" in (project / "p.html").read_text(encoding="utf-8")
