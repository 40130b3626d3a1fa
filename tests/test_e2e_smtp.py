"""The Kultur edition of 1 July 2019 delivered over real SMTP, asserted on what the server received."""

from __future__ import annotations

import re

import pytest

from tests.conftest import SMTPServer

TITLES = [
    "Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019",
    "KS arrangerer lederkonferanse",
    "KS ønsker en sterkere rolle i den nasjonale kulturpolitikken",
    "Regionalisering av kulturen – for kulturens skyld",
    "Kulturpolitikk mot en ny tid",
    "Ås satser på kulturskolen",
]
CONTACT = ["KONTAKT", "Haakon VIIs gate 9, 0161 Oslo", "24 13 26 00", "ks@ks.no"]


@pytest.fixture
def sent(project, smtp_server: SMTPServer, run_cli, monkeypatch) -> SMTPServer:
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    assert "sent 3" in result.stdout
    return smtp_server


def test_one_message_per_subscriber(sent: SMTPServer):
    assert len(sent.received) == 3
    assert sorted(r.recipients[0] for r in sent.received) == [
        "bjorn.aase@example.org", "kari.nordmann@example.org", "ola.hansen@example.org"]
    assert {r.envelope_from for r in sent.received} == {"kultur@ks.no"}


def test_subject_with_aeoeaa_is_encoded_and_decodes(sent: SMTPServer):
    raw = sent.received[0].data
    subject_line = re.search(rb"^Subject: (.*(?:\r\n .*)*)", raw, re.MULTILINE).group(1)
    assert subject_line.isascii() and b"=?utf-8?" in subject_line  # RFC 2047 on the wire
    assert sent.received[0].message["Subject"] == f"Kultur: {TITLES[0]}"


def test_both_parts_carry_the_whole_edition(sent: SMTPServer):
    for received in sent.received:
        message = received.message
        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]  # text first, HTML last
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        for needle in [*TITLES, "KOMMUNESPEILET", "Les flere artikler", *CONTACT]:
            assert needle in text, needle
            assert needle in html.replace("&amp;", "&"), needle
        assert "1. juli 2019" in text and "1. juli 2019" in html


def test_each_recipient_has_their_own_unsubscribe_link(sent: SMTPServer):
    urls = set()
    for received in sent.received:
        message = received.message
        header = str(message["List-Unsubscribe"])
        https = re.search(r"<(http[^>]+/avmeld/[^>]+)>", header).group(1)
        assert re.search(r"<mailto:unsubscribe@ks\.no\?subject=[^>]+>", header)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert https in message.get_body(("plain",)).get_content()
        assert https in message.get_body(("html",)).get_content()
        assert received.recipients[0] in message.get_body(("plain",)).get_content()
        urls.add(https)
    assert len(urls) == 3


def test_headers_a_mailbox_provider_expects(sent: SMTPServer):
    message = sent.received[0].message
    assert message["From"] == "KS Kultur <kultur@ks.no>"
    assert message["Reply-To"] == "post@ks.no"
    assert message["Date"]
    assert message["List-Id"] == "Kultur <kultur.ks.no>"
    assert message["Message-ID"].endswith("@ks.no>")
    assert len({r.message["Message-ID"] for r in sent.received}) == 3
    names = {r.recipients[0]: str(r.message["To"]) for r in sent.received}
    assert names["bjorn.aase@example.org"] == "Bjørn Åse <bjorn.aase@example.org>"


def test_sending_again_delivers_nothing(sent: SMTPServer, run_cli):
    again = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert again.exit_code == 0
    assert "nothing new was sent" in again.stdout
    assert len(sent.received) == 3


def test_test_copy_goes_to_one_address_and_is_not_recorded(project, smtp_server: SMTPServer, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    test = run_cli("send", "kultur", "--as-of", "2019-07-01", "--to", "redaktor@example.org")
    assert test.exit_code == 0, test.stderr
    assert [r.recipients for r in smtp_server.received] == [["redaktor@example.org"]]
    assert smtp_server.received[0].message["Subject"].startswith("[TEST] Kultur: ")
    # The real send afterwards still reaches all three subscribers.
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    assert len(smtp_server.received) == 4


def test_dry_run_counts_and_sends_nothing(project, smtp_server: SMTPServer, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01", "--dry-run")
    assert result.exit_code == 0
    assert "would go to 3 subscribers" in result.stdout
    assert smtp_server.received == []
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    assert len(smtp_server.received) == 3


def test_refused_recipient_is_reported_and_others_still_get_it(project, smtp_server: SMTPServer, run_cli,
                                                                monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    smtp_server.handler.replies["ola.hansen@example.org"] = "550 5.1.1 No such user"
    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code != 0
    # "No such user" is a bounce: recorded, and the address is never mailed again.
    assert "bounced 1" in result.stdout
    assert "550" in result.stderr and "o***@example.org" in result.stderr
    row = next(line for line in run_cli("subscribers", "list").stdout.splitlines() if "ola.hansen@" in line)
    assert "bounced" in row
    assert sorted(r.recipients[0] for r in smtp_server.received) == [
        "bjorn.aase@example.org", "kari.nordmann@example.org"]


def test_unreachable_server_is_one_clear_line(project, run_cli, monkeypatch):
    from tests.conftest import free_port

    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{free_port()}")
    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1
    assert "cannot connect to SMTP 127.0.0.1" in result.stderr and "connection failures in a row" in result.stderr
    assert "sent 0" in result.stdout
    assert "Traceback" not in result.stderr
