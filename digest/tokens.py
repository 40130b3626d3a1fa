"""Signed, never-expiring tokens that name a subscriber and a digest (unsubscribe and preferences links)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from digest.errors import DigestError

SECRET_ENV = "DIGEST_SECRET"
_SIGNATURE_BYTES = 16


class InvalidToken(DigestError, ValueError):
    """The token was altered, truncated or signed with another secret."""


@dataclass(frozen=True)
class TokenClaims:
    subscriber_id: int
    digest: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(secret: bytes, subscriber_id: int, digest: str) -> str:
    payload = f"{subscriber_id}:{digest}".encode()
    signature = hmac.new(secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return f"{_b64(payload)}.{_b64(signature)}"


def read_token(secret: bytes, token: str) -> TokenClaims:
    try:
        payload_part, signature_part = token.split(".")
        payload, signature = _unb64(payload_part), _unb64(signature_part)
        # Re-encoding must give back the same text, so two spellings of one token cannot both pass.
        if _b64(payload) != payload_part or _b64(signature) != signature_part:
            raise ValueError("non-canonical encoding")
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken("malformed token") from None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    if not hmac.compare_digest(signature, expected):
        raise InvalidToken("token signature does not match")
    try:
        subscriber_part, digest = payload.decode().split(":", 1)
        return TokenClaims(int(subscriber_part), digest)
    except ValueError:
        raise InvalidToken("malformed token payload") from None


def resolve_secret(store: object, environ: Mapping[str, str] | None = None) -> bytes:
    """DIGEST_SECRET from the environment; without it, a random secret generated once and kept in the store.

    The fallback keeps `make demo` working on a fresh machine while links in old e-mails stay valid; production
    sets DIGEST_SECRET so that several machines sign alike. The secret itself is never printed or logged.
    """
    env = os.environ if environ is None else environ
    if env.get(SECRET_ENV):
        return env[SECRET_ENV].encode()
    from digest.store import Store

    assert isinstance(store, Store)
    value = store.set_setting_once("generated_secret", secrets.token_urlsafe(32))
    if not getattr(resolve_secret, "_warned", False):
        print(f"note: {SECRET_ENV} is not set; using a secret generated for this database.", file=sys.stderr)
        resolve_secret._warned = True  # type: ignore[attr-defined]
    return value.encode()


# Each kind of link signs with its own key derived from the secret, so a token made for one purpose (say, the
# preferences page) can never be replayed as another (unsubscribe, confirming a sign-up).
def purpose_key(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"kulturdigest/{purpose}".encode(), hashlib.sha256).digest()


def make_preferences_token(secret: bytes, subscriber_id: int, digest: str) -> str:
    return make_token(purpose_key(secret, "preferences"), subscriber_id, digest)


def read_preferences_token(secret: bytes, token: str) -> TokenClaims:
    return read_token(purpose_key(secret, "preferences"), token)


def make_confirmation_token(secret: bytes, pending_id: int) -> str:
    return make_token(purpose_key(secret, "confirm"), pending_id, "confirm")


def read_confirmation_token(secret: bytes, token: str) -> int:
    return read_token(purpose_key(secret, "confirm"), token).subscriber_id
