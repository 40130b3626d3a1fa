"""Reading a fetched body in a child process with a hard deadline: a parse that runs over is killed.

A thread cannot be stopped, and a CPU-bound parse in a thread holds the GIL that every other source's parse needs:
one hostile feed (five thousand items, a megabyte of nested markup) made healthy feeds miss their own deadlines.
A process per parse shares nothing but the CPU, which the operating system divides fairly, and is killed when
its source's time is up. Children are forked from a forkserver: a small, single-threaded process started once,
with the parsers imported already. So a parse costs a fork of that small process (forking the web app or pytest,
with their big heaps and threads, took longer and would inherit their locks), not a Python start-up.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from time import monotonic
from typing import Any

from digest.errors import SourceError

# What the forkserver imports once, so that each forked child has the parsers ready.
# digest.cli too: a script run by path (the `digest` console script) is run again as __mp_main__ in each child,
# and with its imports already loaded here that costs nothing.
_PRELOAD = ["digest.sources.preload", "digest.cli"]
CHILD_NICENESS = 10
DEMOTE_AFTER = 1.0
_context: Any = None
_context_lock = threading.Lock()


def _forkserver() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def warm_up() -> None:
    """Start the forkserver now (it imports the parsers while the sources are being fetched)."""
    from multiprocessing import forkserver

    _forkserver()
    forkserver.ensure_running()


def run_isolated(function: Callable[..., Any], kwargs: dict[str, Any], *, deadline: float, url: str) -> Any:
    """`function(**kwargs)` in a child process, its result (picklable) back; SourceError on overrun.

    `deadline` is a time.monotonic() value. A SourceError raised by `function` comes back as a SourceError with its
    message; any other exception as "unexpected error while reading it", never a traceback in the caller.
    """
    context = _forkserver()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, kwargs), daemon=True,
                              name="kulturdigest-parse")
    try:
        process.start()
        sender.close()  # the child holds its own end: the parent's must go, or a dead child never reads as EOF
        if not receiver.poll(max(0.0, deadline - monotonic())):
            raise SourceError("ran out of time while reading it (the timeout covers fetching and reading)",
                              url=url)
        try:
            kind, value = receiver.recv()
        except (EOFError, OSError):
            raise SourceError(f"the reader stopped without an answer (exit code {process.exitcode})",
                              url=url) from None
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        receiver.close()
        if process.exitcode is not None:
            process.close()
    if kind == "ok":
        return value
    raise SourceError(value, url=url)


def _child(sender: Connection, function: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    # Below the parent: however many hostile bodies are being read, the fetching and the web app stay responsive.
    # A parse still running after DEMOTE_AFTER seconds drops to the lowest priority, so the hogs among many
    # parses yield the CPU to the quick ones (a healthy feed reads in milliseconds).
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    demote = threading.Timer(DEMOTE_AFTER, _lowest_priority, args=(os.getpid(),))
    demote.daemon = True
    demote.start()
    try:
        outcome: tuple[str, Any] = ("ok", function(**kwargs))
    except SourceError as err:
        outcome = ("error", str(err))
    except Exception as err:  # a parser bug on one odd body must not cost the whole edition
        outcome = ("error", f"unexpected error while reading it: {err!r}"[:500])
    try:
        sender.send(outcome)
    except Exception as err:  # a result that cannot be pickled
        sender.send(("error", f"unexpected error while reading it: {err!r}"[:500]))
    finally:
        sender.close()


def _lowest_priority(thread_id: int) -> None:
    # On Linux a priority belongs to a thread; the parser runs in the main thread, whose id is the process id.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread_id, 19)
