"""schedule.yaml's schedule, approval and editors keys: good values load, bad ones stop `digest run` with one line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from digest.config import load_settings
from tests.scheduling import edit_schedule

DEMO_DIGEST = """\
state: sqlite:///digest.db
digests:
  kultur:
    title: Kultur
    sender:
      from: KS Kultur <kultur@ks.no>
    more_url: https://www.ks.no/
    contact:
      organisation: KS
    sources:
      - type: files
        path: content/
{extra}    schedule:
      cron: "{cron}"
      timezone: {timezone}
{schedule_extra}"""


def write(project, *, cron="0 7 * * mon", timezone="Europe/Oslo", extra="", schedule_extra=""):
    (project / "schedule.yaml").write_text(
        DEMO_DIGEST.format(cron=cron, timezone=timezone, extra=extra, schedule_extra=schedule_extra),
        encoding="utf-8")


def test_defaults_grace_six_hours_and_no_approval(project):
    settings = load_settings(project / "schedule.yaml")
    kultur = settings.digest("kultur")
    assert kultur.schedule.misfire_grace == timedelta(hours=6)
    assert kultur.approval is None and kultur.editors == []


def test_approval_rules_and_grace_are_read(project):
    edit_schedule(project, approval="required", editors=["redaksjon@ks.no"],
                  schedule={"cron": "0 7 * * 1", "misfire_grace": "1h30m"})
    kultur = load_settings(project / "schedule.yaml").digest("kultur")
    assert kultur.approval is not None and kultur.approval.auto_after is None
    assert kultur.schedule.misfire_grace == timedelta(minutes=90)

    edit_schedule(project, approval={"auto_after": "2h"})
    assert load_settings(project / "schedule.yaml").digest("kultur").approval.auto_after == timedelta(hours=2)


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"cron": "0 25 * * mon"}, "schedule.yaml:14: digests.kultur.schedule.cron: '0 25 * * mon' is not a valid cron"),
    ({"cron": "0 7 * mon"}, "schedule.yaml:14: digests.kultur.schedule.cron: '0 7 * mon' is not a cron expression"),
    ({"cron": "0 7 * * 9"}, "schedule.yaml:14: digests.kultur.schedule.cron: '0 7 * * 9' is not a valid cron"),
    ({"timezone": "Europe/Bergen"}, "schedule.yaml:15: digests.kultur.schedule.timezone: unknown time zone"),
    ({"schedule_extra": "      misfire_grace: 6\n"},
     "schedule.yaml:16: digests.kultur.schedule.misfire_grace: 6 is not a duration; write e.g. 6h"),
    ({"schedule_extra": "      misfire: 6h\n"}, "schedule.yaml:16: digests.kultur.schedule.misfire: unknown key"),
    ({"extra": "    approval: sometimes\n    editors: [red@ks.no]\n"},
     "schedule.yaml:13: digests.kultur.approval: 'sometimes' is not an approval rule"),
    ({"extra": "    approval: required\n"},
     "schedule.yaml:3: digests.kultur.editors: required when 'approval' is set"),
    ({"extra": "    approval:\n      auto_after: soon\n    editors: [red@ks.no]\n"},
     "schedule.yaml:14: digests.kultur.approval.auto_after: 'soon' is not a duration"),
    ({"extra": "    editors: [not-an-address]\n"}, "schedule.yaml:13: digests.kultur.editors.0: 'not-an-address'"),
])
def test_bad_schedule_stops_run_with_one_line(project, run_cli, kwargs, expected):
    write(project, **kwargs)
    result = run_cli("run", "--once")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {expected}"), lines[0]
    assert not (project / "digest.db").exists(), "nothing may be written before the config is valid"


def test_digest_without_sources_is_refused(project, run_cli):
    text = (project / "schedule.yaml").read_text(encoding="utf-8")
    (project / "schedule.yaml").write_text(text.replace("      - type: files\n        path: content/\n", ""),
                                           encoding="utf-8")
    result = run_cli("run")
    assert result.exit_code == 1
    assert "digests.kultur.sources" in result.stderr and len(result.stderr.strip().splitlines()) == 1
