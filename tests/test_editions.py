"""Which articles an edition holds, and that a sent edition stays as it was sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SMTPServer


def outbox_files(project: Path, batch: str) -> list[Path]:
    return sorted((project / "outbox" / batch).glob("*.eml"))


def test_preview_writes_html_and_text_and_prints_the_path(project, run_cli):
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "ut/forhåndsvisning.html")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "ut/forhåndsvisning.html"
    html = (project / "ut" / "forhåndsvisning.html").read_text(encoding="utf-8")
    text = (project / "ut" / "forhåndsvisning.txt").read_text(encoding="utf-8")
    assert html.count("<h2") == 7  # six articles and KONTAKT
    assert "@@" not in html and "@@" not in text  # personal values filled with examples
    assert "Ås satser på kulturskolen" in text


def test_window_starts_where_the_previous_edition_stopped(project, run_cli):
    run_cli("subscribers", "import", "examples/subscribers.csv")
    assert run_cli("send", "kultur", "--as-of", "2019-03-01").exit_code == 0
    first = outbox_files(project, "kultur-2019-03-01")[0].read_text()
    assert "KS =C3=B8nsker en sterkere rolle" in first  # 20 February 2019
    assert "lederkonferanse" not in first  # 6 May 2019: after this edition

    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    second = outbox_files(project, "kultur-2019-07-01")[0].read_text()
    assert "lederkonferanse" in second and "kulturkommune 2019" in second
    assert "sterkere rolle" not in second  # sent already in March


def test_nothing_new_sends_nothing_and_exits_zero(project, run_cli):
    run_cli("subscribers", "import", "examples/subscribers.csv")
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    result = run_cli("send", "kultur", "--as-of", "2019-07-08")
    assert result.exit_code == 0
    assert "No new articles for 'kultur'" in result.stdout
    assert not (project / "outbox" / "kultur-2019-07-08").exists()


def test_first_edition_looks_back_first_window_days(project, run_cli):
    result = run_cli("preview", "kultur", "--as-of", "2020-06-01", "--out", "p.html")
    assert result.exit_code == 0
    text = (project / "p.txt").read_text(encoding="utf-8")
    assert "kulturkommune 2019" in text  # June 2019: within 365 days
    assert "Regionalisering" not in text  # September 2018: older


def test_preview_of_a_sent_edition_shows_it_as_sent(project, run_cli):
    run_cli("subscribers", "import", "examples/subscribers.csv")
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    # Content changes after the send: a new article, a removed one.
    (project / "content" / "2019-06-30-ny.md").write_text(
        "---\ntitle: Sommeråpent bibliotek\npublished: 2019-06-30T10:00:00+02:00\nurl: https://www.ks.no/ny/\n---\n"
        "Nytt.\n", encoding="utf-8")
    (project / "content" / "2018-12-05-as-satser-pa-kulturskolen.md").unlink()
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "p.html")
    assert "as sent" in result.stderr
    text = (project / "p.txt").read_text(encoding="utf-8")
    assert "Ås satser på kulturskolen" in text and "Sommeråpent" not in text


def test_outbox_eml_is_multipart_with_one_click_headers(project, run_cli):
    import email
    import email.policy

    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert "Messages: " in result.stdout and "kultur-2019-07-01" in result.stdout
    files = outbox_files(project, "kultur-2019-07-01")
    assert [f.name for f in files] == ["bjorn.aase@example.org.eml", "kari.nordmann@example.org.eml",
                                       "ola.hansen@example.org.eml"]
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message.get_content_type() == "multipart/alternative"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "<https://" in str(message["List-Unsubscribe"]) or "<http://" in str(message["List-Unsubscribe"])
        assert "<mailto:" in str(message["List-Unsubscribe"])


@pytest.mark.parametrize("as_of", ["1. juli", "2019-13-01"])
def test_bad_as_of_is_a_clear_error(project, run_cli, as_of):
    result = run_cli("preview", "kultur", "--as-of", as_of)
    assert result.exit_code == 2
    assert "--as-of" in result.stderr and "Traceback" not in result.stderr


def test_bad_test_address(project, run_cli, smtp_server: SMTPServer, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    result = run_cli("send", "kultur", "--as-of", "2019-07-01", "--to", "redaktør@")
    assert result.exit_code == 1 and "not a valid e-mail address" in result.stderr
    assert smtp_server.received == []
