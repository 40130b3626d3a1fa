"""One log line per event (`event key=value …`, or JSON for log shippers), for `digest run` and friends."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

logger = logging.getLogger("digest")

_FIELDS = "digest_fields"


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `event` with its facts. Never pass a full e-mail address: mask it first (see consent.mask)."""
    logger.log(level, event, extra={_FIELDS: fields})


def _record_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any]]:
    if hasattr(record, _FIELDS):
        fields = dict(getattr(record, _FIELDS))
        event = record.getMessage()
    else:
        # A plain message (digest.sources' report per source, APScheduler's warnings): kept, on the same one line.
        fields = {"message": record.getMessage()}
        event = record.name.rsplit(".", 1)[-1] if record.name.startswith("digest.") else record.name.split(".")[0]
    if record.exc_info and record.exc_info[1] is not None:
        error = record.exc_info[1]
        fields["error"] = f"{type(error).__name__}: {error}"
    return event, fields


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class TextFormatter(logging.Formatter):
    """`2026-03-30T05:00:03Z INFO edition_sent digest=kultur edition=2026-03-30 sent=3`"""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _record_fields(record)
        parts = [_time(record), record.levelname, event]
        for key, value in fields.items():
            text = str(_plain(value))
            if text == "" or any(c.isspace() or c in '"=' for c in text):
                text = json.dumps(text, ensure_ascii=False)
            parts.append(f"{key}={text}")
        return " ".join(parts)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, event and the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = _record_fields(record)
        data = {"time": _time(record), "level": record.levelname.lower(), "event": event}
        data.update({key: _plain(value) for key, value in fields.items() if key not in data})
        return json.dumps(data, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (it may be replaced after logging was set up, e.g. in tests)."""

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(log_format: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    """Send our events (and APScheduler's warnings) to `stream` (stderr), one line each. Returns the handler."""
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JSONFormatter() if log_format == "json" else TextFormatter())
    for name, level in (("digest", logging.INFO), ("apscheduler", logging.WARNING),
                        # APScheduler's "was missed by" warning: our run_missed event says it, with the digest.
                        ("apscheduler.executors", logging.ERROR)):
        target = logging.getLogger(name)
        for old in [h for h in target.handlers if getattr(h, "_digest_handler", False)]:
            target.removeHandler(old)
        target.setLevel(level)
        if name != "apscheduler.executors":
            handler._digest_handler = True  # type: ignore[attr-defined]
            target.addHandler(handler)
            target.propagate = False
    return handler
