"""What the atomic delivery claim costs: claim (conditional UPDATE) + mark sent, against the unconditional marks it
replaced, per delivery on a SQLite file; and two processes sharing one edition. Prints figures, asserts nothing.

    .venv/bin/python bench/claim.py [subscribers]
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

from digest.models import Edition
from digest.store import Store


def _setup(folder: Path, count: int, key: str) -> tuple[str, int]:
    url = f"sqlite:///{folder / 'bench.db'}"
    store = Store.open(url)
    store.import_subscribers(((f"leser{i}@example.org", f"Leser {i}") for i in range(count)), source="bench")
    now = datetime.now(UTC)
    stored, _ = store.create_edition(Edition(digest="bench", key=key, date=date.today(), since=now, until=now,
                                             articles=()))
    store.close()
    return url, stored.id


def _claim_all(url: str, edition_id: int) -> tuple[int, float]:
    store = Store.open(url)
    started = time.perf_counter()
    won = 0
    for subscriber in list(store.pending_deliveries(edition_id)):
        if store.claim_delivery(edition_id, subscriber.id):
            store.mark_delivery(edition_id, subscriber.id, "sent")
            won += 1
    return won, time.perf_counter() - started


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        url, edition_id = _setup(Path(tmp), count, "marks")
        store = Store.open(url)
        started = time.perf_counter()
        for subscriber in list(store.pending_deliveries(edition_id)):
            store.mark_delivery(edition_id, subscriber.id, "sending")
            store.mark_delivery(edition_id, subscriber.id, "sent")
        marks = time.perf_counter() - started
        store.close()

    with tempfile.TemporaryDirectory() as tmp:
        url, edition_id = _setup(Path(tmp), count, "claims")
        won, claims = _claim_all(url, edition_id)
        assert won == count

    with tempfile.TemporaryDirectory() as tmp:
        url, edition_id = _setup(Path(tmp), count, "shared")
        started = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            results = list(pool.map(_claim_all, [url, url], [edition_id, edition_id]))
        shared = time.perf_counter() - started
        wins = [won for won, _ in results]

    print(f"{count} deliveries on one SQLite file (no SMTP):")
    print(f"  mark sending + mark sent   {marks / count * 1000:.3f} ms per delivery")
    print(f"  claim + mark sent          {claims / count * 1000:.3f} ms per delivery "
          f"(ratio {claims / marks:.2f})")
    print(f"  two processes, one edition {shared:.2f} s wall; claims won {wins[0]} + {wins[1]} = {sum(wins)}")


if __name__ == "__main__":
    main()
