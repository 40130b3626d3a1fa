"""Hostile names: decoded, checked and capped where they enter, refused cleanly with nothing half-done."""

from __future__ import annotations

import email
import email.policy

import httpx

from digest.subscribers import clean_name

EVIL = "=?utf-8?q?Evil=0D=0ABcc:_evil@example.org?="


def test_an_encoded_line_break_in_the_sign_up_name_is_a_clear_400(web_app, smtp_server):
    form = {"epost": "liv.berg@example.org", "navn": EVIL, "kommune": "Asker", "nyhetsbrev": "kultur"}
    refused = httpx.post(f"{web_app.url}/abonner", data=form)
    assert refused.status_code == 400
    assert "Navnet kan ikke ha linjeskift eller kontrolltegn." in refused.text
    assert smtp_server.received == []
    # Nothing was left pending: the real sign-up right after gets its confirmation at once, not in an hour.
    accepted = httpx.post(f"{web_app.url}/abonner", data={**form, "navn": "Liv Berg"})
    assert accepted.status_code == 200 and "Sjekk e-posten din" in accepted.text
    assert [r.recipients for r in smtp_server.received] == [["liv.berg@example.org"]]
    assert "Bcc" not in smtp_server.received[0].data.decode("ascii")


def test_import_asking_for_confirmation_refuses_the_bad_row_before_sending_anything(project, run_cli, smtp_server,
                                                                                   monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    (project / "liste.csv").write_text(
        f"email,name\nanne@example.org,Anne\nevil@example.org,{EVIL}\nbodil@example.org,Bodil\n", encoding="utf-8")
    result = run_cli("subscribers", "import", "liste.csv", "--confirm")
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == ("error: liste.csv:3: the name contains a line break or control character; "
                                     "nothing was imported")
    assert smtp_server.received == []  # not one of three, but none: the file was refused up front


def test_a_ten_thousand_character_name_makes_a_to_line_within_998_bytes(project, run_cli):
    (project / "liste.csv").write_text("email,name\n" f"kari@example.org,{'K' * 10_000}\n"
                                       f"ola@example.org,{'🎻' * 300}\n", encoding="utf-8")
    assert run_cli("subscribers", "import", "liste.csv").exit_code == 0
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    messages = sorted((project / "outbox" / "kultur-2019-07-01").glob("*.eml"))
    assert len(messages) == 2
    for path in messages:
        data = path.read_bytes()
        head = data.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in head.split(b"\r\n")) <= 998
        to = email.message_from_bytes(data, policy=email.policy.default)["To"]
        name = to.addresses[0].display_name
        assert name in ("K" * 200, "🎻" * 100)  # capped: 200 characters, at most 400 bytes of UTF-8


def test_names_are_decoded_before_they_are_checked_and_kept():
    assert clean_name("=?utf-8?q?Kari_Nordmann?=") == "Kari Nordmann"
    assert clean_name("=?iso-8859-1?q?Bj=F8rn?=") == "Bjørn"
    for bad in (EVIL, "Kari\u2028Bcc: x@y.no", "Kari\x00", "=?utf-8?b?S2FyaQ0K?="):
        try:
            clean_name(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
