"""Sends the desk started: an approved edition goes out in a thread of its own, so the editor's request returns at
once and the edition page can say "sendes" until the thread is done, and then what came of it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

log = logging.getLogger("digest.web")


@dataclass
class SendJob:
    """One send started from the desk: who started it, when, and (once done) its result as the desk words it."""

    digest: str
    key: str
    editor: str
    started: datetime
    thread: threading.Thread | None = None
    sent: int = 0    # messages handed over so far, of …
    total: int = 0   # … those this send set out with (0 until the sender has counted them)
    done: bool = False
    ok: bool = False
    text: str = ""


@dataclass
class BackgroundSends:
    """The desk's sends by (digest, edition key); at most one running for an edition at a time."""

    _jobs: dict[tuple[str, str], SendJob] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, job: SendJob, work: Callable[[], tuple[bool, str]]) -> bool:
        """Run `work` (which answers ok and a sentence) in a thread; False when this edition is being sent already."""
        with self._lock:
            running = self._jobs.get((job.digest, job.key))
            if running is not None and not running.done:
                return False
            self._jobs[(job.digest, job.key)] = job

        def run() -> None:
            try:
                job.ok, job.text = work()
            except Exception:  # the thread must always end with an answer for the page, never silently
                log.exception("desk: sending %s %s failed", job.digest, job.key)
                job.ok, job.text = False, "Utsendingen stoppet på grunn av en uventet feil; se loggen på tjeneren."
            finally:
                job.done = True

        job.thread = threading.Thread(target=run, name=f"desk-send-{job.digest}-{job.key}", daemon=True)
        job.thread.start()
        return True

    def get(self, digest: str, key: str) -> SendJob | None:
        with self._lock:
            return self._jobs.get((digest, key))

    @staticmethod
    def progress(job: SendJob) -> Callable[[int, int], None]:
        """The sender's progress callback for `job` (it runs in the sending thread; the page reads the counts)."""
        def note(sent: int, total: int) -> None:
            job.sent, job.total = sent, total

        return note

    def running(self, digest: str, key: str) -> bool:
        job = self.get(digest, key)
        return job is not None and not job.done

    def wait(self, timeout: float | None = None) -> None:
        """Let every running send finish (the app stops; its store is about to close)."""
        with self._lock:
            threads = [job.thread for job in self._jobs.values() if job.thread is not None]
        for thread in threads:
            thread.join(timeout)
