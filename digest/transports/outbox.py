"""The embedded default transport: one `.eml` file per message in a folder per edition."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from digest.errors import SendError, TransportError
from digest.transports import Envelope


class OutboxTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.description = f"outbox {folder}"

    def open(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TransportError(f"cannot create the outbox folder {self.folder}: {err.strerror}") from err

    def close(self) -> None:
        pass

    def __enter__(self) -> OutboxTransport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def path_for(self, envelope: Envelope) -> Path:
        safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", envelope.recipient)
        return self.folder / envelope.batch / f"{safe}.eml"

    def send(self, envelope: Envelope) -> None:
        path = self.path_for(envelope)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: a crash never leaves a half-written .eml behind.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".eml")
            with os.fdopen(fd, "wb") as fh:
                fh.write(envelope.data)
            os.replace(tmp, path)
        except OSError as err:
            raise SendError(f"cannot write {path}: {err.strerror}", recipient=envelope.recipient) from err
