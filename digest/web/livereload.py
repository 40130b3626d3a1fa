"""Live preview: a watchfiles thread counts changes to the e-mail templates and the content folders.

The open preview page asks for the count every second (`/redaksjon/endringer`) and reloads when it grew. Polling a
number keeps the server simple (no connection held open, nothing that delays a shutdown) and is easy to test.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from watchfiles import watch

log = logging.getLogger("digest.web")

# watchfiles waits this long for a burst of writes (an editor saving several files) to end before reporting.
DEBOUNCE_MS = 150


class ChangeCounter:
    """Counts changes under `paths`; started on first use, stopped with `stop()` (or with the process)."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = tuple(dict.fromkeys(path.resolve() for path in paths))
        self._version = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def version(self) -> int:
        self.start()
        with self._lock:
            return self._version

    def bump(self) -> int:
        with self._lock:
            self._version += 1
            return self._version

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            existing = [path for path in self.paths if path.exists()]
            if not existing:
                self._ready.set()
                return
            self._thread = threading.Thread(target=self._run, args=(existing,), name="livereload", daemon=True)
            self._thread.start()
        # Changes made right after the first request must not be missed while the watcher is still starting.
        self._ready.wait(timeout=5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, paths: list[Path]) -> None:
        try:
            # yield_on_timeout: an empty set every 200 ms while idle; the first one means the watch is in place.
            for changes in watch(*paths, debounce=DEBOUNCE_MS, step=50, stop_event=self._stop, rust_timeout=200,
                                 yield_on_timeout=True, raise_interrupt=False):
                self._ready.set()
                if changes:
                    log.info("preview: %d file(s) changed, reloading", len(changes))
                    self.bump()
        except Exception:  # a watcher that cannot run must not take the web app down: the preview still works
            log.exception("live reload stopped")
        finally:
            self._ready.set()
