"""Helpers for the scheduler tests: edit the project's schedule.yaml, add subscribers, run `digest` as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, Received


def edit_schedule(project: Path, **digest_changes: Any) -> None:
    """Change keys of the `kultur` digest in the project's schedule.yaml (None removes a key)."""
    path = project / "schedule.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    kultur = data["digests"]["kultur"]
    for key, value in digest_changes.items():
        if value is None:
            kultur.pop(key, None)
        else:
            kultur[key] = value
    # The demo articles are from 2018-2019; a look-back long enough keeps them in any edition these tests build.
    kultur["first_window_days"] = 20000
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def cron_at(moment: datetime) -> str:
    """A crontab line (read in UTC) that fires at `moment`'s minute."""
    return f"{moment.minute} {moment.hour} {moment.day} {moment.month} *"


def write_subscribers(project: Path, count: int) -> Path:
    path = project / f"subscribers-{count}.csv"
    rows = ["email,name"] + [f"leser{i:03d}@example.org,Leser {i}" for i in range(count)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def recipients(received: list[Received], *, tests: bool = False) -> Counter[str]:
    """How many messages each address got; [TEST] previews are counted only with tests=True."""
    counts: Counter[str] = Counter()
    for message in received:
        is_test = str(message.message["Subject"]).startswith("[TEST]")
        if is_test == tests:
            counts.update(message.recipients)
    return counts


def digest_env(project: Path, smtp_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_TRANSPORT=smtp_url, DIGEST_SECRET="test-secret", PYTHONPATH=str(REPO))
    return env


def start_digest(project: Path, smtp_url: str, *args: str) -> subprocess.Popen[str]:
    """`digest ARGS…` as its own process (the way cron and systemd start it), output captured."""
    return subprocess.Popen([sys.executable, "-m", "digest", *args], cwd=project, env=digest_env(project, smtp_url),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kinds(outcomes: list[Any]) -> list[str]:
    """The kinds of a run's outcomes (digest.app.outcome.Outcome), e.g. ["sent"]."""
    return [outcome.kind for outcome in outcomes]
