"""One way out for every message: editions, test copies and confirmations leave with the sender's return path as
the envelope sender (MAIL FROM), which no header of ours repeats."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SMTPServer
from tests.sending_helpers import AS_OF, import_people


def set_return_path(project: Path, value: str) -> None:
    config = project / "schedule.yaml"
    text = config.read_text(encoding="utf-8")
    line = "      reply_to: post@ks.no\n"
    assert line in text
    config.write_text(text.replace(line, f"{line}      return_path: {value}\n"), encoding="utf-8")


def test_mail_from_is_the_return_path_for_every_kind_of_message(project, run_cli, smtp_server: SMTPServer,
                                                                 monkeypatch):
    set_return_path(project, "bounces@ks.no")
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    import_people(project, run_cli, 2)
    assert run_cli("send", "kultur", "--as-of", AS_OF).exit_code == 0
    assert run_cli("send", "kultur", "--as-of", AS_OF, "--to", "redaktor@example.org").exit_code == 0
    (project / "new.csv").write_text("email,name\nny@example.org,Ny Leser\n", encoding="utf-8")
    assert run_cli("subscribers", "import", "new.csv", "--confirm").exit_code == 0

    assert len(smtp_server.received) == 4
    for received in smtp_server.received:
        assert received.envelope_from == "bounces@ks.no"
        message = received.message
        assert message["From"] == "KS Kultur <kultur@ks.no>" and message["Reply-To"] == "post@ks.no"
        assert "Return-Path" not in message  # the receiving server writes it, from MAIL FROM
        assert b"bounces@ks.no" not in received.data


def test_without_a_return_path_mail_from_is_the_from_address(project, run_cli, smtp_server: SMTPServer,
                                                              monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    import_people(project, run_cli, 1)
    assert run_cli("send", "kultur", "--as-of", AS_OF).exit_code == 0
    assert [r.envelope_from for r in smtp_server.received] == ["kultur@ks.no"]


def test_a_return_path_with_a_name_is_one_clear_line(project, run_cli):
    set_return_path(project, '"Bounces <bounces@ks.no>"')
    result = run_cli("send", "kultur", "--as-of", AS_OF, "--dry-run")
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "return_path" in result.stderr and "bare address" in result.stderr
    assert "Traceback" not in result.stderr
