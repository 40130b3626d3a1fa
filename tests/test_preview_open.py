"""`digest preview NAME --open`: the desk's preview in the default browser when `digest serve` answers, else the
written HTML file. The "browser" is a script named in $BROWSER (the webbrowser module's own hook) that notes the URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import WebApp, free_port

DIGEST = Path(sys.executable).parent / "digest"


@pytest.fixture
def opened(tmp_path: Path) -> tuple[dict[str, str], Path]:
    log = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{log}"\n', encoding="utf-8")
    script.chmod(0o755)
    return {"BROWSER": f"{script} %s"}, log


def _preview_open(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DIGEST), "preview", "kultur", "--as-of", "2019-07-01", "--open"], cwd=project,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False)


def test_open_shows_the_desk_preview_when_serve_answers(web_app: WebApp, project, opened):
    env, log = opened
    result = _preview_open(project, env)
    assert result.returncode == 0, result.stderr
    desk = f"{web_app.url}/redaksjon/kultur?dato=2019-07-01"
    assert log.read_text(encoding="utf-8") == desk + "\n"
    assert f"Opened {desk}" in result.stderr
    assert result.stdout.strip().endswith("kultur-2019-07-01.html")  # the file is written as before


def test_open_shows_the_html_file_when_no_desk_answers(project, opened, monkeypatch):
    env, log = opened
    monkeypatch.setenv("DIGEST_BASE_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    result = _preview_open(project, env)
    assert result.returncode == 0, result.stderr
    written = (project / "outbox" / "preview" / "kultur-2019-07-01.html").resolve()
    assert log.read_text(encoding="utf-8") == written.as_uri() + "\n"
    assert written.read_text(encoding="utf-8").startswith("<!doctype html>")
