"""Content is content: a title, teaser or kicker that looks like a placeholder, a format string or an encoded word goes
out literally, in every header and part, through `send`, `--dry-run`, `--to`, the outbox, the desk and the archive.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import Desk, SMTPServer
from tests.desk_client import logged_in
from tests.helpers_mail import html_of, text_of

LOOKALIKES = "@@x_y@@ @@h_email@@ @@email@@ @@t_greeting@@ {email} {{ name }} %s =40 =?utf-8?q?x?="
TITLE = f"Tilbud {LOOKALIKES} i dag"
TEASER = f"Les om @@unsubscribe_url@@, {{preferences_url}} og =?iso-8859-1?q?=E5?= her: {LOOKALIKES}."
KICKER = "@@greeting@@ =3D {title}"
SUBJECT = f"Kultur: {TITLE}"
# A subscriber's own name may look like a placeholder too: it is a value, never searched for markers. (A name
# written as encoded words is read as a mail client shows it when it is imported: "Åse =?utf-8?q?x?= Ø" is "Åse x Ø".)
PEOPLE = [("kari@example.org", "Kari Nordmann"), ("ola@example.org", "@@h_email@@ {email}"),
          ("aase@example.org", "Åse %s {{ name }} =40 Ø")]
MARKER = re.compile(r"@@[a-z_]+\.[0-9a-f]{32}@@")


@pytest.fixture
def hostile(project: Path, run_cli) -> Path:
    """The newest article of the 1 July 2019 edition (so its title is in the Subject) is made of lookalikes."""
    front = {"title": TITLE, "kicker": KICKER, "published": "2019-06-30T08:00:00+02:00",
             "url": "https://www.ks.no/tilbud-i-dag/"}
    (project / "content" / "2019-06-30-tilbud.md").write_text(
        "---\n" + yaml.safe_dump(front, allow_unicode=True) + "---\n" + TEASER + "\n\nResten av saken.\n",
        encoding="utf-8")
    (project / "people.csv").write_text("email,name\n" + "".join(f'{e},"{n}"\n' for e, n in PEOPLE),
                                        encoding="utf-8")
    result = run_cli("subscribers", "import", "people.csv")
    assert result.exit_code == 0, result.stderr
    return project


def flat(text: str) -> str:
    return " ".join(text.split())


def assert_literal(message: email.message.EmailMessage, *, subject: str = SUBJECT) -> None:
    assert message["Subject"] == subject
    page = flat(html.unescape(html_of(message)))
    text = flat(text_of(message))
    for part in (page, text):
        assert TITLE in part and flat(TEASER) in part and KICKER in part
        assert not MARKER.search(part)


def assert_each_has_only_their_own(messages: dict[str, email.message.EmailMessage], raw: dict[str, bytes]) -> None:
    assert {str(message["Subject"]) for message in messages.values()} == {SUBJECT}
    for address, message in messages.items():
        name = dict(PEOPLE)[address]
        assert message["To"].addresses[0].addr_spec == address
        assert message["To"].addresses[0].display_name == name
        assert_literal(message)
        assert f"Hei, {name}!" in text_of(message)
        assert f"Hei, {html.escape(name)}!" in html_of(message)
        assert f"fordi {address} abonnerer" in text_of(message)
        for other, _ in PEOPLE:
            if other != address:
                everything = raw[address].decode("ascii") + text_of(message) + html_of(message)
                assert other not in everything, (address, other)


def test_send_over_smtp_delivers_lookalikes_literally(hostile, smtp_server: SMTPServer, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.received) == len(PEOPLE)
    messages = {r.recipients[0]: r.message for r in smtp_server.received}
    raw = {r.recipients[0]: r.data for r in smtp_server.received}
    assert_each_has_only_their_own(messages, raw)
    # The Subject on the wire is ASCII, and "=?utf-8?q?x?=" in it is inside an encoded word, not one of its own.
    subject = re.search(rb"^Subject: (.*(?:\r\n[ \t].*)*)", smtp_server.received[0].data, re.MULTILINE).group(1)
    assert subject.isascii() and b" =?utf-8?q?x?= " not in subject

    again = run_cli("send", "kultur", "--as-of", "2019-07-01")  # a rerun finds everyone served, and says so
    assert again.exit_code == 0, again.stderr
    assert len(smtp_server.received) == len(PEOPLE)


def test_outbox_files_hold_lookalikes_literally(hostile, run_cli):
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    files = {path.stem: path.read_bytes() for path in (hostile / "outbox" / "kultur-2019-07-01").glob("*.eml")}
    assert sorted(files) == sorted(address for address, _ in PEOPLE)
    messages = {address: email.message_from_bytes(data, policy=email.policy.default) for address, data in files.items()}
    assert_each_has_only_their_own(messages, files)  # type: ignore[arg-type]


def test_dry_run_and_test_copy_work_with_lookalikes(hostile, smtp_server: SMTPServer, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    dry = run_cli("send", "kultur", "--as-of", "2019-07-01", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert smtp_server.received == []

    copy = run_cli("send", "kultur", "--as-of", "2019-07-01", "--to", "redaktor@example.org")
    assert copy.exit_code == 0, copy.stderr
    [received] = smtp_server.received
    assert received.recipients == ["redaktor@example.org"]
    assert_literal(received.message, subject=f"[TEST] {SUBJECT}")
    assert not any(address in received.data.decode("ascii") for address, _ in PEOPLE)


def test_desk_preview_and_archive_show_lookalikes_literally(hostile, desk: Desk, run_cli, monkeypatch):
    client = logged_in(desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"})
    assert page.status_code == 200
    assert f'<dd id="emne">{html.escape(SUBJECT, quote=False)}</dd>' in page.text
    frame = client.get("/redaksjon/kultur/epost", params={"dato": "2019-07-01"})
    assert frame.status_code == 200
    shown = flat(html.unescape(frame.text))
    assert TITLE in shown and flat(TEASER) in shown and KICKER in shown
    assert "Hei! Nytt om kultur" in shown and "fordi abonnent@example.org abonnerer" in shown
    assert not MARKER.search(frame.text)

    monkeypatch.setenv("DIGEST_TRANSPORT", "outbox:outbox")
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    archived = client.get("/arkiv/kultur/2019-07-01")
    assert archived.status_code == 200
    public = flat(html.unescape(archived.text))
    assert TITLE in public and flat(TEASER) in public and KICKER in public
    # The public page has no "because you subscribe" (issue 13): a public footer line instead.
    assert "Dette er en utgave av" in public and "fordi du abonnerer" not in public
    assert "Meld deg av" not in public and "Endre innstillinger" not in public
    assert not MARKER.search(archived.text)
    assert not any(address in archived.text for address, _ in PEOPLE)
