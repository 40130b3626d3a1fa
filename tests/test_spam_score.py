"""SpamAssassin (Debian's, offline: `spamassassin -L -t`) scores the demo message 0.0; the rules that fire are golden.

`make test` installs spamassassin when it is missing. -L keeps it from asking DNS blocklists or other network tests,
so the score depends only on the message.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_render import assert_golden

SPAMASSASSIN = "/usr/bin/spamassassin"
RULE_LINE = re.compile(r"^\s*(-?\d+\.\d+)\s+([A-Z0-9_]+)\s", re.MULTILINE)


def spam_report(message: Path, home: Path) -> tuple[float, list[str]]:
    """The score and the rules that fired (points and name), from `spamassassin -L -t`."""
    if not Path(SPAMASSASSIN).exists() or shutil.which("perl") is None:
        pytest.fail(f"{SPAMASSASSIN} is missing: `make test` installs Debian's spamassassin")
    prefs = home / "user_prefs"
    prefs.write_text("", encoding="utf-8")
    done = subprocess.run([SPAMASSASSIN, "-L", "-t", "-p", str(prefs)], input=message.read_bytes(),
                          capture_output=True, timeout=120, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    report = done.stdout.decode("utf-8", "replace")
    score = re.search(r"Content analysis details:\s+\((-?[\d.]+) points", report)
    assert score, f"no SpamAssassin report (exit {done.returncode}): {done.stderr.decode()[-2000:]}"
    details = report[score.end():]
    return float(score.group(1)), [f"{points} {name}" for points, name in RULE_LINE.findall(details)]


def test_demo_message_scores_zero(project: Path, run_cli, tmp_path_factory: pytest.TempPathFactory):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    message = sorted((project / "outbox" / "kultur-2019-07-01").glob("*.eml"))[0]
    score, rules = spam_report(message, tmp_path_factory.mktemp("spamassassin-home"))
    # No white-on-white preheader (HTML_FONT_LOW_CONTRAST, 0.7 before), nothing else that costs points.
    assert score == 0.0, rules
    assert "HTML_FONT_LOW_CONTRAST" not in " ".join(rules)
    assert_golden("spamassassin-rules.txt", "\n".join(sorted(rules, key=lambda rule: rule.split()[1])) + "\n")
