"""Who an edition goes to: per-digest subscriptions, segments from schedule.yaml, and the suppression list."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from digest.consent import Segment
from digest.store import Store, subscribers

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ALL = ["kultur", "idrett"]

TWO_DIGESTS = """
  idrett:
    title: Idrett
    sender:
      from: KS Idrett <idrett@ks.no>
    more_url: https://www.ks.no/
    contact:
      organisation: KS
    sources:
      - type: files
        path: content/
    schedule:
      cron: "0 7 * * tue"
    segment:
      municipalities: [Asker, Bærum]
"""


def _store(project) -> Store:  # type: ignore[no-untyped-def]
    return Store.open(f"sqlite:///{project / 'digest.db'}")


def _emails(people) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(p.email for p in people)


def test_subscriptions_segments_and_suppression(project):
    store = _store(project)
    store.import_subscribers([("a@example.org", "A"), ("b@example.org", "B"), ("c@example.org", "C")],
                             source="test", digests=ALL)
    a, b, c = (store.subscriber_by_email(f"{x}@example.org").id for x in "abc")
    store.update_preferences(a, name="A", municipality="Asker", topics=["musikk"], digests=ALL, all_digests=ALL,
                             source="test", consent_text="ja", now=NOW)
    store.update_preferences(b, name="B", municipality="Oslo", topics=[], digests=["idrett"], all_digests=ALL,
                             source="test", consent_text="ja", now=NOW)

    assert _emails(store.audience("kultur")) == ["a@example.org", "c@example.org"]
    assert _emails(store.audience("idrett")) == ["a@example.org", "b@example.org", "c@example.org"]
    in_asker = Segment(municipalities=("asker", "Bærum"))
    assert _emails(store.audience("idrett", in_asker)) == ["a@example.org"]
    assert _emails(store.audience("kultur", Segment(topics=("musikk", "teater")))) == ["a@example.org"]

    # Unsubscribing from one digest keeps the other; the last one going means leaving.
    result = store.unsubscribe(c, "kultur", all_digests=ALL, source="test", now=NOW)
    assert result is not None and result.remaining == ("idrett",)
    assert _emails(store.audience("kultur")) == ["a@example.org"]
    result = store.unsubscribe(c, "idrett", all_digests=ALL, source="test", now=NOW)
    assert result is not None and result.remaining == ()
    assert store.subscriber_by_email("c@example.org").status == "unsubscribed"
    assert store.suppression_reason("C@example.org") == "unsubscribed"

    # A suppressed address is never queued, even if something put it back as "active".
    with store.engine.begin() as conn:
        conn.execute(sa.update(subscribers).where(subscribers.c.id == c).values(status="active"))
    assert "c@example.org" not in _emails(store.audience("idrett"))
    store.close()


def test_a_digest_limited_to_a_segment_in_schedule_yaml(project, run_cli):
    with (project / "schedule.yaml").open("a", encoding="utf-8") as fh:
        fh.write(TWO_DIGESTS)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    store = _store(project)
    kari = store.subscriber_by_email("kari.nordmann@example.org")
    store.update_preferences(kari.id, name="Kari", municipality="Bærum", topics=[], digests=ALL, all_digests=ALL,
                             source="test", consent_text="ja", now=NOW)
    store.close()
    result = run_cli("send", "idrett", "--as-of", "2019-07-01", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "would go to 1 subscribers" in result.stdout
    result = run_cli("send", "kultur", "--as-of", "2019-07-01", "--dry-run")
    assert "would go to 3 subscribers" in result.stdout


def test_an_unknown_segment_key_names_its_line(project, run_cli):
    with (project / "schedule.yaml").open("a", encoding="utf-8") as fh:
        fh.write(TWO_DIGESTS.replace("municipalities:", "kommuner:"))
    result = run_cli("subscribers", "list")
    assert result.exit_code == 1
    assert "schedule.yaml:" in result.stderr and "digests.idrett.segment.kommuner: unknown key" in result.stderr
