"""How long collecting the hostile corpus takes (tests/hostile_corpus.py): 75 hostile feeds and pages and 5 healthy
feeds on 127.0.0.1, each hostile source with its own timeout. The collection must end within the largest source
timeout plus a small margin, whatever the sources do; prints the wall time and the slowest sources.

    .venv/bin/python bench/hostile.py [--hostile-timeout 20] [--healthy-timeout 20] [--margin 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_settings  # noqa: E402 (after the path setup above)
from digest.sources import collect  # noqa: E402
from digest.store import Store  # noqa: E402
from tests.hostile_corpus import CASES, HostileServer, sources_yaml  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile-timeout", type=float, default=20.0)
    parser.add_argument("--healthy-timeout", type=float, default=20.0)
    parser.add_argument("--margin", type=float, default=3.0, help="seconds allowed beyond the largest timeout")
    args = parser.parse_args()
    largest = max([args.hostile_timeout, args.healthy_timeout, *(case.timeout or 0 for case in CASES)])
    with HostileServer() as server, tempfile.TemporaryDirectory() as folder:
        text = (ROOT / "schedule.yaml").read_text(encoding="utf-8")
        schedule = Path(folder) / "schedule.yaml"
        sources = sources_yaml(server, hostile_timeout=args.hostile_timeout, healthy_timeout=args.healthy_timeout)
        schedule.write_text(text.replace("      - type: files\n        path: content/\n", sources), encoding="utf-8")
        settings = load_settings(schedule, environ={})
        store = Store.open(f"sqlite:///{folder}/bench.db")
        started = time.monotonic()
        collection = collect(settings, settings.digest("kultur"), store=store,
                             now=datetime(2019, 6, 30, 10, 0, tzinfo=UTC))
        wall = time.monotonic() - started
        store.close()
    ok = [report for report in collection.reports if report.ok]
    print(f"{len(collection.reports)} sources ({len(CASES)} hostile): {len(ok)} gave articles or nothing wrong, "
          f"{len(collection.failures)} failed with a warning, {len(collection.articles)} articles")
    print(f"collect: {wall:.1f} s; largest source timeout {largest:g} s, margin {args.margin:g} s")
    for report in sorted(ok, key=lambda report: report.seconds, reverse=True)[:5]:
        print(f"  {report.seconds:5.2f} s  {report.name}")
    if wall > largest + args.margin:
        print("over the largest timeout plus the margin")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
