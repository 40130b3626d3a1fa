"""The pooled SMTP sender against real aiosmtpd servers with scripted replies: what each reply does to a recipient."""

from __future__ import annotations

import sqlite3

import pytest

from tests.sending_helpers import AS_OF, add_sending, import_people, ledger, statuses
from tests.smtp_scripted import ScriptedHandler, scripted_server

FAST_RETRIES = {"retry_delay_seconds": 0.01, "max_retry_delay_seconds": 0.05}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-command-at-a-time"])
def test_pool_delivers_one_copy_to_each_subscriber(project, run_cli, monkeypatch, pipelining):
    handler = ScriptedHandler(pipelining=pipelining)
    add_sending(project, pool_size=3, max_messages_per_connection=4, batch_size=7)
    # A name that starts with a dot puts a dot at the start of an encoded line: SMTP must double it on the wire.
    people = import_people(project, run_cli, 25, extra=(("dot@example.org", ".Punktum"),))
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)
        again = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert "sent 26, deferred 0, failed 0." in result.stdout
    assert "messages/s sent" in result.stdout
    assert handler.copies() == dict.fromkeys(people, 1)
    # Reconnects after max_messages_per_connection: more connections than the pool has at once.
    assert len({d.peer for d in handler.received}) >= 26 // 4
    by_address = {d.recipient: d.message for d in handler.received}
    assert "Hei, .Punktum!" in by_address["dot@example.org"].get_body(("plain",)).get_content()
    message_ids = {m["Message-ID"] for m in by_address.values()}
    assert len(message_ids) == 26
    assert set(ledger(project).values()) == {("sent", 1, None, None)}
    assert again.exit_code == 0
    assert "Every subscriber already has this edition" in again.stdout
    assert len(handler.received) == 26


def test_421_is_retried_on_another_connection_and_delivered_once(project, run_cli, monkeypatch):
    handler = ScriptedHandler(script={"person002@example.org": ["DATA:421 4.3.2 Too busy, try later"]})
    add_sending(project, pool_size=2, **FAST_RETRIES)
    people = import_people(project, run_cli, 6)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert handler.copies() == dict.fromkeys(people, 1)
    first, second = handler.attempts["person002@example.org"]
    assert first != second  # a new connection (421 closes the old one)
    assert ledger(project)["person002@example.org"] == ("sent", 2, None, None)


def test_4xx_retry_goes_to_another_connection_of_the_pool(project, run_cli, monkeypatch):
    # 451 at RCPT keeps the connection open; the retry should still use the other one.
    handler = ScriptedHandler(script={"person000@example.org": ["RCPT:451 4.7.1 Greylisted, come back later"]})
    add_sending(project, pool_size=2, **FAST_RETRIES)
    import_people(project, run_cli, 1)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    first, second = handler.attempts["person000@example.org"]
    assert first != second
    assert handler.copies() == {"person000@example.org": 1}


def test_no_such_user_bounces_and_suppresses_other_5xx_fail(project, run_cli, monkeypatch):
    handler = ScriptedHandler(script={
        "person001@example.org": ["RCPT:550 5.1.1 <person001@example.org>: Recipient address rejected"],
        "person002@example.org": ["RCPT:552 5.2.2 Mailbox full"],
        "person003@example.org": ["DATA:554 5.7.1 Message rejected as spam"],
    })
    add_sending(project, pool_size=2, **FAST_RETRIES)
    import_people(project, run_cli, 5)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 2  # some sent, some not
    assert "sent 2, deferred 0, failed 2, bounced 1." in result.stdout
    rows = ledger(project)
    assert rows["person001@example.org"][0:3] == ("failed", 1, 550)
    assert "Recipient address rejected" in rows["person001@example.org"][3]
    assert rows["person002@example.org"][0:3] == ("failed", 1, 552)
    assert rows["person003@example.org"][0:3] == ("failed", 1, 554)
    assert "Message rejected as spam" in rows["person003@example.org"][3]
    people = statuses(project)
    assert people["person001@example.org"] == "bounced"
    assert people["person002@example.org"] == "active"
    assert people["person003@example.org"] == "active"
    assert "p***@example.org: bounced" in result.stderr
    assert "person001" not in result.stderr + result.stdout  # addresses are masked in the output


def test_disconnect_in_the_middle_of_data_is_retried(project, run_cli, monkeypatch):
    handler = ScriptedHandler(script={"person001@example.org": ["DATA:disconnect"]})
    add_sending(project, pool_size=1, **FAST_RETRIES)
    people = import_people(project, run_cli, 3)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert handler.copies() == dict.fromkeys(people, 1)
    assert ledger(project)["person001@example.org"] == ("sent", 2, None, None)


def test_a_server_that_never_answers_times_out_and_the_recipient_waits_for_the_next_run(project, run_cli,
                                                                                           monkeypatch):
    handler = ScriptedHandler(script={"person000@example.org": ["DATA:hang", "DATA:hang"]})
    add_sending(project, pool_size=2, max_attempts=2, timeout_seconds=0.3, **FAST_RETRIES)
    import_people(project, run_cli, 3)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        first = run_cli("send", "kultur", "--as-of", AS_OF)
        assert first.exit_code == 2
        assert "sent 2, deferred 1, failed 0." in first.stdout
        assert "1 deferred subscriber still waits for this edition" in first.stdout
        assert "timed out" in first.stderr
        state, attempts, code, _ = ledger(project)["person000@example.org"]
        assert (state, attempts, code) == ("deferred", 2, None)

        # The relay is fine again: the next run sends only what was left.
        second = run_cli("send", "kultur", "--as-of", AS_OF)
    assert second.exit_code == 0, second.stderr
    assert "Resuming kultur 2019-07-01: 1 of 3 subscribers remain." in second.stdout
    assert "sent 1, deferred 0, failed 0, already sent before 2." in second.stdout
    assert handler.copies() == {f"person00{i}@example.org": 1 for i in range(3)}


def test_consecutive_connection_failures_pause_the_run(project, run_cli, monkeypatch):
    from tests.conftest import free_port

    add_sending(project, pool_size=2, max_errors=3, **FAST_RETRIES)
    import_people(project, run_cli, 20)
    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{free_port()}")  # nobody listens there
    result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert "Pausing: 3 connection failures in a row (last: cannot connect to SMTP 127.0.0.1" in result.stderr
    assert "Stopped early: paused after 3 connection failures in a row" in result.stdout
    assert "20 subscribers still wait for this edition" in result.stdout
    # Nothing was tried, so nothing counts as an attempt: all wait, queued, for the next run.
    assert {state for state, *_ in ledger(project).values()} == {"queued"}
    assert {attempts for _, attempts, *_ in ledger(project).values()} == {0}


def test_rate_limit_window_waits_and_says_so(project, run_cli, monkeypatch):
    handler = ScriptedHandler()
    add_sending(project, pool_size=2, window_messages=2, window_seconds=1)
    people = import_people(project, run_cli, 3)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert "Rate limit of 2 messages per 1 s reached: waiting 1 s (until " in result.stderr
    assert handler.copies() == dict.fromkeys(people, 1)


def test_dry_run_builds_every_message_in_batches_and_connects_to_nothing(project, run_cli, monkeypatch):
    handler = ScriptedHandler()
    add_sending(project, batch_size=4)
    import_people(project, run_cli, 10)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF, "--dry-run")

    assert result.exit_code == 0, result.stderr
    assert "would go to 10 subscribers. Nothing was sent." in result.stdout
    assert "messages/s built, 0.4 MB." in result.stdout
    assert handler.attempts == {}
    with sqlite3.connect(project / "digest.db") as db:
        assert db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)


@pytest.mark.parametrize(("block", "expected"), [
    ("sending:\n  pool_size: 0\n",
     "schedule.yaml:{line}: sending.pool_size: Input should be greater than or equal to 1"),
    ("sending:\n  pool: 4\n", "schedule.yaml:{line}: sending.pool: unknown key"),
])
def test_bad_sending_block_is_one_clear_line(project, run_cli, block, expected):
    config = project / "schedule.yaml"
    before = config.read_text(encoding="utf-8")
    config.write_text(before + "\n" + block, encoding="utf-8")
    line = before.count("\n") + 3
    result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: " + expected.format(line=line)
