"""`digest bounces ingest` on the fixtures in tests/fixtures/bounces/: one message of each kind, and soft bounces."""

from __future__ import annotations

import shutil

from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "bounces"
FIVE = ("email,name\nkari.nordmann@example.org,Kari Nordmann\nola.hansen@example.org,Ola Hansen\n"
        "bjorn.aase@example.org,Bjørn Åse\nper.olsen@example.org,Per Olsen\nliv.berg@example.org,Liv Berg\n")


def _statuses(run_cli) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from digest.store import Store

    store = Store.open("sqlite:///digest.db")
    try:
        return {s.email: s.status for s in store.list_subscribers()}
    finally:
        store.close()


def test_each_kind_of_returned_mail_in_a_maildir(project, run_cli):
    # Subscriber ids 1–5 in this order: the tokens in the fixtures were made for them with DIGEST_SECRET=test-secret.
    (project / "five.csv").write_text(FIVE, encoding="utf-8")
    assert run_cli("subscribers", "import", "five.csv").exit_code == 0
    shutil.copytree(FIXTURES / "maildir", project / "bounces")

    result = run_cli("bounces", "ingest", "bounces")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Read 6 messages.",
        "  hard bounces → bounced:          1",
        "  soft bounces counted:            1",
        "  soft, third in a row → bounced:  0",
        "  complaints → complained:         1",
        "  unsubscribe mails → unsubscribed: 1",
        "  already handled:                 0",
        "  unknown recipient:               0",
        "  unsubscribe with invalid token:  1",
        "  not understood (ignored):        1",
    ]
    assert "o***@example.org: hard bounce 5.1.1 → bounced" in result.stderr
    assert "ola.hansen@example.org" not in result.stderr + result.stdout  # addresses are masked
    assert _statuses(run_cli) == {
        "kari.nordmann@example.org": "complained",    # ARF, recipient redacted: found by the token
        "ola.hansen@example.org": "bounced",          # 5.1.1
        "bjorn.aase@example.org": "active",           # one 4.2.2: counted only
        "per.olsen@example.org": "unsubscribed",      # mailto with a valid token
        "liv.berg@example.org": "active",             # mailto with an altered token: nobody changed
    }

    again = run_cli("bounces", "ingest", "bounces")
    assert "  already handled:                 4" in again.stdout
    assert "  soft bounces counted:            0" in again.stdout   # the same delay notice is not counted twice

    # The suppression list holds: importing the same list again resubscribes nobody, and says so.
    reimport = run_cli("subscribers", "import", "five.csv")
    assert "Not resubscribed: 3 addresses on the suppression list" in reimport.stdout
    assert _statuses(run_cli)["ola.hansen@example.org"] == "bounced"


def test_three_soft_bounces_in_a_row_in_an_mbox(project, run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    result = run_cli("bounces", "ingest", str(FIXTURES / "soft-three-in-a-row.mbox"))
    assert result.exit_code == 0, result.stderr
    assert "Read 4 messages." in result.stdout
    assert "  soft bounces counted:            2" in result.stdout
    assert "  soft, third in a row → bounced:  1" in result.stdout
    assert "  already handled:                 1" in result.stdout  # the second delay notice for one message
    assert _statuses(run_cli)["ola.hansen@example.org"] == "bounced"


def test_a_message_sent_between_soft_bounces_breaks_the_row(project, run_cli):
    from datetime import UTC, date, datetime

    from digest.models import Edition
    from digest.store import Store

    store = Store.open("sqlite:///digest.db")
    store.import_subscribers([("ola.hansen@example.org", "Ola")], source="test")
    now = datetime(2019, 7, 1, tzinfo=UTC)
    ids = []
    for day in (1, 8, 15, 22):
        edition = Edition(digest="kultur", key=f"2019-07-{day:02d}", date=date(2019, 7, day), since=now, until=now,
                          articles=())
        stored, _ = store.create_edition(edition)
        ids.append(stored.id)
    store.mark_delivery(ids[1], 1, "sent")  # the 8 July edition arrived
    outcomes = [store.record_bounce("ola.hansen@example.org", hard=False, message_ref=f"m{i}", edition_id=ids[i],
                                    now=now) for i in (0, 2, 3)]
    assert outcomes == ["counted", "counted", "counted"]  # 1 July, (8 July arrived), 15 July, 22 July: two in a row
    assert store.record_bounce("ola.hansen@example.org", hard=False, message_ref="m4", edition_id=ids[3] + 1,
                               now=now) == "bounced"
    store.close()


def test_a_path_that_is_no_mailbox_is_one_clear_line(project, run_cli):
    (project / "notes.txt").write_text("hello\n", encoding="utf-8")
    for path, message in (("missing", "no such Maildir folder or mbox file"),
                          ("notes.txt", "not an mbox file"),
                          ("content", "not a Maildir")):
        result = run_cli("bounces", "ingest", path)
        assert result.exit_code == 1
        assert message in result.stderr and "Traceback" not in result.stderr
