"""What ops see while `digest send` runs: a Rich progress bar with rate and ETA on a terminal, log lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from digest.models import SendReport


class RateColumn(ProgressColumn):
    """Messages per second, as Rich measures it over the last half minute."""

    def render(self, task: Task) -> Text:
        return Text("" if task.speed is None else f"{_thousands(task.speed)}/s")


class SendView:
    """A context manager offering `progress(done, total)` and `notice(text)` callbacks for the sender."""

    def __init__(self, console: Console, *, description: str = "Sending", log_every: float = 10.0) -> None:
        self.console = console
        self.description = description
        self.log_every = log_every
        self._bar: Progress | None = None
        self._task = None
        self._started = time.monotonic()
        self._last_log = self._started

    def __enter__(self) -> SendView:
        self._started = self._last_log = time.monotonic()
        if self.console.is_terminal:
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                                 TimeRemainingColumn(), console=self.console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=None)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def progress(self, done: int, total: int) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)
            return
        now = time.monotonic()
        if now - self._last_log >= self.log_every or (done == total and now - self._started >= self.log_every):
            self._last_log = now
            rate = done / (now - self._started) if now > self._started else 0.0
            eta = f", about {_duration((total - done) / rate)} left" if rate and done < total else ""
            self.console.print(f"{self.description}: {done} of {total} ({rate:.0f}/s{eta})", highlight=False)

    def notice(self, text: str) -> None:
        (self._bar.console if self._bar is not None else self.console).print(text, markup=False, highlight=False)


def summary_line(report: SendReport) -> str:
    """Time and rate of the run, for the final report."""
    rate = report.sent / report.elapsed if report.elapsed > 0 else 0.0
    verb = "built" if report.dry_run else "sent"
    size = f", {report.message_bytes / 1e6:.1f} MB" if report.dry_run else ""
    return f"Time {_duration(report.elapsed)}, {_thousands(rate)} messages/s {verb}{size}."


def _thousands(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
