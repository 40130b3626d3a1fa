"""Send-time guards: an http base_url or a missing DKIM key over SMTP, and HTML Gmail would clip, draw one line each;
`sending.require` turns them into refusals that send nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import load_settings
from digest.guards import CLIP_LIMIT_BYTES, check_send, over_smtp
from tests.conftest import SMTPServer


def settings_with(project: Path, *, base_url: str = "http://127.0.0.1:8000", require: str | None = None):
    path = project / "schedule.yaml"
    if require is not None:
        path.write_text(path.read_text(encoding="utf-8") + f"sending:\n  require: {require}\n", encoding="utf-8")
    return load_settings(path, environ={"DIGEST_BASE_URL": base_url})


def test_each_guard_names_its_fix(project: Path):
    settings = settings_with(project)
    guards = check_send(settings, html_bytes=121 * 1024, smtp=True, signed=False)
    assert [g.rule for g in guards.warnings] == ["https", "dkim", "unclipped"]
    assert guards.refusals == ()
    https, dkim, clipped = (g.message for g in guards.warnings)
    assert "base_url http://127.0.0.1:8000 is not https" in https and "DIGEST_BASE_URL" in https
    assert "DIGEST_DKIM_KEY_FILE" in dkim and "DIGEST_DKIM_SELECTOR" in dkim
    assert "the HTML is 121 KB" in clipped and "max_articles" in clipped
    assert all("\n" not in line for line in guards.lines())
    assert check_send(settings, html_bytes=CLIP_LIMIT_BYTES, smtp=False, signed=False).lines() == []


def test_a_secure_small_send_has_no_guards(project: Path):
    settings = settings_with(project, base_url="https://kultur.ks.no", require="[https, dkim, unclipped]")
    assert check_send(settings, html_bytes=40_000, smtp=True, signed=True).lines() == []


def test_the_outbox_is_for_trying_things_out(project: Path):
    # Files in a folder reach nobody: no https or DKIM warning. A clipped message is clipped wherever it goes.
    settings = settings_with(project, require="[https, dkim]")
    assert check_send(settings, html_bytes=40_000, smtp=False, signed=False).lines() == []
    assert [g.rule for g in check_send(settings, html_bytes=200_000, smtp=False, signed=False).warnings] == \
        ["unclipped"]
    assert over_smtp("smtp://relay:587") and over_smtp("smtps://relay") and not over_smtp("outbox:outbox")


def test_require_turns_only_the_named_guards_into_refusals(project: Path):
    guards = check_send(settings_with(project, require="[dkim]"), html_bytes=40_000, smtp=True, signed=False)
    assert [g.rule for g in guards.refusals] == ["dkim"]
    assert [g.rule for g in guards.warnings] == ["https"]
    assert guards.lines()[0].startswith("refused (dkim is in sending.require): no DKIM key")


def test_unknown_requirement_is_a_config_error(project: Path, run_cli):
    path = project / "schedule.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "sending:\n  require: [tls]\n", encoding="utf-8")
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1
    assert "schedule.yaml" in result.stderr and "sending.require" in result.stderr and "'https'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def over_smtp_project(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, run_cli) -> Path:
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    for variable in ("DIGEST_DKIM_KEY_FILE", "DIGEST_DKIM_SELECTOR", "DIGEST_DKIM_DOMAIN"):
        monkeypatch.delenv(variable, raising=False)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    return project


def test_send_over_smtp_with_http_base_url_warns_and_sends(over_smtp_project: Path, smtp_server: SMTPServer,
                                                           run_cli):
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("base_url http://127.0.0.1:8000 is not https" in line for line in warnings)
    assert any("no DKIM key" in line for line in warnings)
    assert len(smtp_server.received) == 3


def test_require_https_refuses_and_sends_nothing(over_smtp_project: Path, smtp_server: SMTPServer, run_cli,
                                                 monkeypatch: pytest.MonkeyPatch):
    settings_with(over_smtp_project, require="[https]")
    for args in (("send", "kultur", "--as-of", "2019-07-01"),
                 ("send", "kultur", "--as-of", "2019-07-01", "--to", "redaktor@example.org")):
        result = run_cli(*args)
        assert result.exit_code == 1
        assert "refused (https is in sending.require): base_url http://127.0.0.1:8000 is not https" in result.stderr
        assert "Nothing was sent" in result.stdout
    assert smtp_server.received == []
    # Nothing recorded either: once base_url is https, the whole audience gets the edition.
    result = run_cli("send", "kultur", "--as-of", "2019-07-01", "--dry-run")
    assert result.exit_code == 1
    monkeypatch.setenv("DIGEST_BASE_URL", "https://kultur.ks.no")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    assert sorted(r.recipients[0] for r in smtp_server.received) == [
        "bjorn.aase@example.org", "kari.nordmann@example.org", "ola.hansen@example.org"]


def test_preview_prints_the_same_warnings(over_smtp_project: Path, run_cli):
    settings_with(over_smtp_project, require="[dkim]")
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "preview.html")
    assert result.exit_code == 0
    assert "warning: base_url http://127.0.0.1:8000 is not https" in result.stderr
    assert "`digest send` will refuse (dkim is in sending.require): no DKIM key" in result.stderr
