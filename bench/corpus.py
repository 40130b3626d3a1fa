"""feedparser's own test corpus (about 2 200 feeds, from its sdist) through the collector, from 127.0.0.1.

Every file is served by a local HTTP server and collected as a `feed` source, in batches, as `digest collect`
would: fetch, read in a child process within the source's timeout, normalise. Prints how many gave articles, how
many failed cleanly (a warning naming the source), the crashes (an exception or a traceback instead of a warning)
and the timeouts, with the slowest files. Exit code 1 when there is any crash or timeout.

    .venv/bin/python bench/corpus.py [--sdist feedparser-6.0.11.tar.gz] [--batch 50] [--timeout 20]

Without --sdist it runs `pip download --no-binary :all: --no-deps feedparser` (the package registry) into a cache
folder, once.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_settings  # noqa: E402 (after the path setup above)
from digest.sources import SourceReport, collect  # noqa: E402
from digest.store import Store  # noqa: E402
from tests.httpserver import HTTPFixtureServer, Route  # noqa: E402

CACHE = Path(tempfile.gettempdir()) / "kulturdigest-bench"
NOW = datetime(2019, 6, 30, 10, 0, tzinfo=UTC)
CORPUS_SUFFIXES = (".xml", ".rss", ".rdf", ".atom", ".gz", ".z")


def sdist(path: str | None) -> Path:
    if path:
        return Path(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("feedparser-*.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                        "--dest", str(CACHE), "feedparser"], check=True)
        found = sorted(CACHE.glob("feedparser-*.tar.gz"))
    return found[-1]


def corpus(archive: Path) -> dict[str, bytes]:
    """Path inside the sdist's tests/ folder → bytes, for every feed-like file."""
    files: dict[str, bytes] = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = member.name.split("/", 2)
            if member.isfile() and len(parts) == 3 and parts[1] == "tests" and \
                    member.name.lower().endswith(CORPUS_SUFFIXES):
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[parts[2]] = extracted.read()
    return files


class CrashCounter(logging.Handler):
    """Log records with a traceback: the collector logs one only for an error it did not expect."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.crashes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.crashes.append(record.getMessage())


def is_timeout(report: SourceReport) -> bool:
    error = report.error or ""
    return "within" in error or "ran out of time" in error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", help="feedparser's sdist (.tar.gz); downloaded with pip when not given")
    parser.add_argument("--batch", type=int, default=50, help="sources per collect()")
    parser.add_argument("--timeout", type=float, default=20.0, help="each source's timeout (s)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N files (0: all)")
    args = parser.parse_args()

    archive = sdist(args.sdist)
    files = corpus(archive)
    names = sorted(files)[: args.limit or None]
    print(f"{archive.name}: {len(names)} files from tests/")
    routes = {f"/{name}": Route(body=files[name], content_type="application/xml") for name in names}
    crashes = CrashCounter()
    logging.getLogger().addHandler(crashes)
    outcomes: Counter[str] = Counter()
    raised: list[str] = []
    timeouts: list[str] = []
    slowest: list[tuple[float, str]] = []
    started = time.monotonic()
    batch_times: list[float] = []
    with HTTPFixtureServer(routes) as server, tempfile.TemporaryDirectory() as folder:
        template = (ROOT / "schedule.yaml").read_text(encoding="utf-8")
        store = Store.open(f"sqlite:///{folder}/bench.db")
        for start in range(0, len(names), args.batch):
            batch = names[start:start + args.batch]
            sources = "".join(f"      - type: feed\n        url: {server.url('/' + name)}\n        label: {name}\n"
                              f"        timeout: {args.timeout:g}\n        retries: 0\n" for name in batch)
            schedule = Path(folder) / "schedule.yaml"
            schedule.write_text(template.replace("      - type: files\n        path: content/\n", sources),
                                encoding="utf-8")
            settings = load_settings(schedule, environ={})
            began = time.monotonic()
            try:
                collection = collect(settings, settings.digest("kultur"), store=store, now=NOW)
            except Exception as err:  # a crash of the whole collection: exactly what must never happen
                raised.append(f"batch {start}: {err!r}")
                continue
            batch_times.append(time.monotonic() - began)
            for report in collection.reports:
                if report.ok:
                    outcomes["articles" if report.articles else "empty"] += 1
                    slowest.append((report.seconds, report.name))
                elif is_timeout(report):
                    timeouts.append(report.describe())
                else:
                    outcomes["failed cleanly"] += 1
            done = min(start + args.batch, len(names))
            print(f"  {done}/{len(names)} files, {time.monotonic() - started:.0f} s", flush=True)
        store.close()
    logging.getLogger().removeHandler(crashes)

    total = time.monotonic() - started
    print(f"\n{len(names)} files in {total:.1f} s ({len(names) / total:.0f} files/s); slowest batch of "
          f"{args.batch}: {max(batch_times, default=0):.1f} s (timeout per source {args.timeout:g} s)")
    print(f"  gave articles:   {outcomes['articles']}")
    print(f"  no articles, ok: {outcomes['empty']}")
    print(f"  failed cleanly:  {outcomes['failed cleanly']} (a warning naming the source)")
    print(f"  timeouts:        {len(timeouts)}")
    print(f"  crashes:         {len(crashes.crashes) + len(raised)}")
    for line in (raised + crashes.crashes + timeouts)[:20]:
        print(f"    {line}")
    print("  slowest fetch+read: " + ", ".join(f"{name} {seconds:.2f} s"
                                             for seconds, name in sorted(slowest, reverse=True)[:5]))
    return 1 if raised or crashes.crashes or timeouts else 0


if __name__ == "__main__":
    sys.exit(main())
