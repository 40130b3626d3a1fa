"""schedule.yaml is validated once at start; an error names the file, the line and the key."""

from __future__ import annotations

import pytest

from digest.config import load_settings
from digest.errors import ConfigError
from tests.conftest import REPO


def config_with(tmp_path, old: str, new: str):
    text = (REPO / "schedule.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "schedule.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path, new


def line_of(path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_the_shipped_file_is_valid():
    settings = load_settings(REPO / "schedule.yaml", environ={})
    kultur = settings.digest("kultur")
    assert kultur.schedule.timezone == "Europe/Oslo"
    assert settings.state == "sqlite:///digest.db" and settings.transport == "outbox:outbox"
    assert kultur.sources[0].path == "content/"


def test_environment_overrides_state_and_transport():
    settings = load_settings(REPO / "schedule.yaml", environ={"DIGEST_DB_URL": "sqlite:////tmp/x.db",
                                                             "DIGEST_TRANSPORT": "smtp://u@mail.example.org:587"})
    assert settings.state == "sqlite:////tmp/x.db"
    assert settings.transport == "smtp://u@mail.example.org:587"


def test_unknown_key_names_line_and_key(tmp_path):
    path, _ = config_with(tmp_path, "    max_articles: 10", "    max_artikler: 10")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert str(caught.value) == f"{path}:{line_of(path, 'max_artikler')}: digests.kultur.max_artikler: unknown key"


def test_bad_value_names_line_and_key(tmp_path):
    path, _ = config_with(tmp_path, "timezone: Europe/Oslo", "timezone: Europe/Bergen")
    with pytest.raises(ConfigError, match=r"schedule\.yaml:\d+: digests\.kultur\.schedule\.timezone: .*Bergen") as c:
        load_settings(path, environ={})
    assert c.value.line == line_of(path, "Europe/Bergen")


def test_bad_sender_address(tmp_path):
    path, _ = config_with(tmp_path, "reply_to: post@ks.no", "reply_to: post-at-ks.no")
    with pytest.raises(ConfigError, match=r"digests\.kultur\.sender\.reply_to: .*not a valid e-mail address"):
        load_settings(path, environ={})


def test_missing_key_points_at_its_parent(tmp_path):
    path, _ = config_with(tmp_path, "      organisation: KS\n", "")
    with pytest.raises(ConfigError, match=r"contact\.organisation: required key is missing") as caught:
        load_settings(path, environ={})
    assert caught.value.line == line_of(path, "contact:")


def test_invalid_yaml_names_the_line(tmp_path):
    path, _ = config_with(tmp_path, "    max_articles: 10", "    max_articles: [10")
    with pytest.raises(ConfigError, match="invalid YAML") as caught:
        load_settings(path, environ={})
    assert caught.value.line is not None


def test_cli_config_error_is_one_line(project, run_cli):
    (project / "schedule.yaml").write_text("digests:\n  kultur:\n    title: Kultur\n    farge: rød\n",
                                           encoding="utf-8")
    result = run_cli("preview", "kultur")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "schedule.yaml:" in result.stderr


def test_unknown_digest(project, run_cli):
    result = run_cli("preview", "musikk")
    assert result.exit_code == 1
    assert "no digest named 'musikk' (known: kultur)" in result.stderr
