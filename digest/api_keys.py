"""API keys for the JSON API: what a key may do (scopes), how a key looks, and how it is kept (hashed).

A key is 32 random bytes, shown once when it is made; the store keeps only its SHA-256. A slow hash (scrypt, as
for the editors' passwords) protects guessable secrets; a random 256-bit key cannot be guessed, so a fast hash
that lets every request be checked in one lookup is enough.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

# Every scope a key can hold, and what it allows (shown by `digest api-keys add --help` and in the API docs).
SCOPES = {
    "subscribers:read": "read a subscriber by address",
    "subscribers:write": "create subscribers (double opt-in), change their choices, unsubscribe them",
    "subscribers:consent": "create subscribers with consent held by the organisation (no confirmation e-mail)",
    "subscribers:forget": "erase an address (GDPR art. 17)",
    "editions:read": "list digests and editions, the next scheduled run",
    "editions:approve": "approve (and so send) or hold an edition",
}

KEY_PREFIX = "kd_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,59}$")


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored key: its name (what the log shows), its scopes, and when it was made, used and revoked."""

    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_key() -> str:
    """A fresh key, e.g. kd_3q2…; the only time it exists in readable form is when it is shown to its owner."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """A key's name as the log shows it: lower-case letters, digits, '.', '_' and '-' (e.g. asker-cms)."""
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a key name: use lower-case letters, digits, '.', '_' or '-' (at most 60), "
                         "e.g. asker-cms")
    return name


def parse_scopes(text: str) -> tuple[str, ...]:
    """'subscribers:write,editions:read' → the scopes, sorted; an unknown one names the known ones."""
    wanted = sorted({part.strip() for part in text.split(",") if part.strip()})
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError(f"give at least one scope; known: {', '.join(SCOPES)}")
    return tuple(wanted)
