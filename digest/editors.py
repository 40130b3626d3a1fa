"""Editor accounts of the desk: names, and passwords kept only as salted scrypt hashes (hashlib, RFC 7914).

A stored hash reads `scrypt$N$r$p$salt$hash` (salt and hash in URL-safe base64), so the cost can be raised later
without breaking the accounts that exist: each hash carries the parameters it was made with.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from datetime import datetime

from digest.errors import DigestError
from digest.store import Store

# The cost OWASP names for scrypt (N=2^17, r=8, p=1): about 128 MiB and a tenth of a second per login attempt.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # a megabyte "password" would only be a way to make the server work hard
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class EditorError(DigestError, ValueError):
    """A name or password that cannot be used, or an editor who does not exist."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES,
                          maxmem=256 * n * r + 1024 * 1024)


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def verify_password(password: str, stored: str) -> bool:
    if len(password) > MAX_PASSWORD_LENGTH:
        return False  # no stored password is that long; and hashing it would only be work for an attacker's benefit
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, _unb64(expected))


@functools.cache
def _dummy_hash() -> str:
    # Checked against when the name is unknown, so a wrong name costs as long as a wrong password and timing tells
    # a prober nothing about which names exist.
    return hash_password(secrets.token_urlsafe(16))


def check_name(name: str) -> str:
    name = name.strip().lower()
    if not _NAME.match(name):
        raise EditorError(f"{name!r} is not a usable editor name (1–63 of a–z, 0–9, '.', '_', '-'; "
                          "starting with a letter or digit)")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise EditorError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise EditorError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def add_editor(store: Store, name: str, password: str, *, now: datetime, replace: bool = False) -> str:
    """Store the editor with a hash of the password; returns the normalised name."""
    name = check_name(name)
    check_password(password)
    if not store.save_editor(name, hash_password(password), now=now, replace=replace):
        raise EditorError(f"an editor named {name!r} exists already (use --replace to set a new password)")
    return name


def authenticate(store: Store, name: str, password: str) -> str | None:
    """The editor's name when the password is right, else None (same cost whether or not the name exists)."""
    try:
        name = check_name(name)
    except EditorError:
        verify_password(password, _dummy_hash())
        return None
    stored = store.editor_password_hash(name)
    if stored is None:
        verify_password(password, _dummy_hash())
        return None
    return name if verify_password(password, stored) else None


def session_stamp(store: Store, name: str) -> str | None:
    """A short fingerprint of the editor's current hash: a session made before a new password (or before the
    editor was removed) carries another stamp and stops working."""
    stored = store.editor_password_hash(name)
    if stored is None:
        return None
    return hashlib.sha256(stored.encode("ascii")).hexdigest()[:16]
