"""How long collecting many web sources takes: 50 feeds on 127.0.0.1, each answering after its own delay.

Fetched one after another they would cost the sum of their delays; fetched together, about the slowest one.
Prints both, the wall time of `collect()` (fetch, parse, store), and a second run where every feed answers 304.

    .venv/bin/python bench/collect.py [--sources 50] [--min-delay 0.2] [--max-delay 1.0]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_settings  # noqa: E402 (after the path setup above)
from digest.sources import collect  # noqa: E402
from digest.store import Store  # noqa: E402
from tests.httpserver import HTTPFixtureServer, Route  # noqa: E402


def feed(number: int) -> bytes:
    items = "".join(
        f"<item><title>Sak {item} fra kommune {number}</title><link>/kommune-{number}/sak-{item}</link>"
        f"<description>&lt;p&gt;Kulturnytt nummer {item} fra kommune {number}.&lt;/p&gt;</description>"
        f"<pubDate>Fri, {10 + item} Jun 2019 09:30:00 +0200</pubDate></item>"
        for item in range(5)
    )
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Kommune {number}</title>' \
           f"{items}</channel></rss>".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--min-delay", type=float, default=0.2)
    parser.add_argument("--max-delay", type=float, default=1.0)
    args = parser.parse_args()

    rng = random.Random(2019)
    delays = [rng.uniform(args.min_delay, args.max_delay) for _ in range(args.sources)]
    routes = {f"/kommune-{n}.rss": Route(body=feed(n), delay=delay, etag=f'"v{n}"')
              for n, delay in enumerate(delays)}

    with HTTPFixtureServer(routes) as server, tempfile.TemporaryDirectory() as folder:
        sources = "".join(
            f"      - type: feed\n        url: {server.url(path)}\n        timeout: {args.max_delay * 3 + 2:g}\n"
            for path in routes
        )
        text = (ROOT / "schedule.yaml").read_text(encoding="utf-8")
        schedule = Path(folder) / "schedule.yaml"
        schedule.write_text(text.replace("      - type: files\n        path: content/\n", sources), encoding="utf-8")
        settings = load_settings(schedule, environ={})
        digest = settings.digest("kultur")
        store = Store.open(f"sqlite:///{folder}/bench.db")

        started = time.perf_counter()
        first = collect(settings, digest, store=store)
        wall = time.perf_counter() - started

        started = time.perf_counter()
        second = collect(settings, digest, store=store)
        wall_304 = time.perf_counter() - started
        store.close()

    failed = [report.describe() for report in (*first.failures, *second.failures)]
    total, slowest = sum(delays), max(delays)
    not_modified = sum(report.not_modified for report in second.reports)
    print(f"{args.sources} feed sources on 127.0.0.1, each answering after {args.min_delay:g}–{args.max_delay:g} s")
    print(f"  sum of delays      {total:7.2f} s   (one after another would take at least this)")
    print(f"  slowest source     {slowest:7.2f} s")
    print(f"  wall time collect  {wall:7.2f} s   {len(first.articles)} articles; "
          f"wall/slowest {wall / slowest:.2f}×, wall/sum {wall / total:.3f}×")
    print(f"  again, with ETags  {wall_304:7.2f} s   {not_modified} of {len(second.reports)} sources answered 304, "
          f"{len(second.articles)} articles")
    for problem in failed:
        print(f"  FAILED {problem}")


if __name__ == "__main__":
    main()
