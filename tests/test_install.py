"""A plain `pip install .` (not editable) into a fresh venv renders and sends, run from a folder of the site's own.

The templates stay in templates/ at the top of the project and travel inside the wheel (setup.py). pip uses its
usual package index and cache, so after the first run the dependencies come from the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

# What a source checkout holds that a build does not need (and that must not leak into it).
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "tests", "outbox", "build", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", "*.db", "bench")


def run(args: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_non_editable_install_previews_and_sends_from_another_folder(tmp_path: Path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DIGEST_", "PYTHON", "VIRTUAL_ENV"))}
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source],
        cwd=tmp_path, env=env)
    shutil.rmtree(source)  # nothing may be read from the source tree after the install

    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(REPO / "schedule.yaml", site / "schedule.yaml")
    shutil.copytree(REPO / "content", site / "content")
    shutil.copy(REPO / "examples" / "subscribers.csv", site / "subscribers.csv")
    env["DIGEST_SECRET"] = "install-test"
    digest = venv / "bin" / "digest"

    run([digest, "subscribers", "import", "subscribers.csv"], cwd=site, env=env)
    preview = run([digest, "preview", "kultur", "--as-of", "2019-07-01", "--out", "preview.html"], cwd=site, env=env)
    assert "preview.html" in preview.stdout
    html = (site / "preview.html").read_text(encoding="utf-8")
    assert "Ås satser på kulturskolen" in html and "KONTAKT" in html
    assert "-- \nDu får denne e-posten" in (site / "preview.txt").read_text(encoding="utf-8")

    sent = run([digest, "send", "kultur", "--as-of", "2019-07-01"], cwd=site, env=env)
    assert "sent 3" in sent.stdout
    assert len(list((site / "outbox" / "kultur-2019-07-01").glob("*.eml"))) == 3

    # The templates the installed package read are its own copy, inside the package.
    shipped = run([venv / "bin" / "python", "-c", "import digest.render as r; print(r.TEMPLATES)"], cwd=site,
                  env=env).stdout.strip()
    assert Path(shipped).is_relative_to(venv) and Path(shipped, "partials", "card.mjml.j2").is_file()
