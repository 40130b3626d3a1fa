"""DKIM signatures for personalised messages: dkimpy's canonicalisation, `cryptography`'s RSA.

`dkim.sign` spends most of its ~12 ms per message in pure-Python RSA; the same signature from `cryptography` (OpenSSL)
takes a fraction of a millisecond and releases the GIL, so the pool's threads sign side by side. The rest is kept
small too, because it holds the GIL: the relaxed header forms are computed directly (and cached for the edition's
own headers, the same in every message), dkimpy's simple body canonicalisation and folding are used as they are, and
the tests verify every signature with dkimpy.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy

from digest.errors import ConfigError

KEY_FILE_ENV = "DIGEST_DKIM_KEY_FILE"
SELECTOR_ENV = "DIGEST_DKIM_SELECTOR"
DOMAIN_ENV = "DIGEST_DKIM_DOMAIN"

# What a receiver needs to trust: who it is from and to, what it says, when, which message, and how to leave. Each is
# named once more than it occurs ("oversigning", RFC 6376 5.4.2 and 8.15): a verifier hashes the extra name as an
# empty field, so a second Subject (or a Reply-To or List-Id the message lacked) added on the way breaks the
# signature instead of changing what the reader sees under a valid one.
OVERSIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "reply-to", "list-id", "list-unsubscribe",
    "list-unsubscribe-post",
)
# The structure headers keep the body's meaning; signed as often as they occur.
STRUCTURE_HEADERS = ("mime-version", "content-type")
SIGNED_HEADERS = OVERSIGNED_HEADERS + STRUCTURE_HEADERS
# (name, how many more times h= names it than the message has it)
_SIGNED = tuple((name.encode(), 1) for name in OVERSIGNED_HEADERS) + tuple(
    (name.encode(), 0) for name in STRUCTURE_HEADERS)
_CANONICALIZATION = (b"relaxed", b"simple")
_POLICY = CanonicalizationPolicy.from_c_value(b"/".join(_CANONICALIZATION))
_HEADER_NAME = b"DKIM-Signature"
_WSP = re.compile(rb"[\t ]+")
_LINE_BREAK = re.compile(rb"\r?\n")


@dataclass(frozen=True)
class DKIMSigner:
    """Signs complete messages (CRLF line endings) for one domain and selector with an RSA key."""

    domain: str
    selector: str
    key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def from_pem(cls, pem: bytes, *, domain: str, selector: str) -> DKIMSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the key is not an RSA private key")
        return cls(domain=domain, selector=selector, key=key)

    def sign(self, message: bytes, *, now: float | None = None) -> bytes:
        """The message with a DKIM-Signature header in front."""
        return self.signature(message, now=now) + message

    def signature(self, message: bytes, *, now: float | None = None) -> bytes:
        """The DKIM-Signature header line (folded, ending in CRLF) for the message."""
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            head, body = message, b""
        fields_by_name = _headers(head)
        include: list[bytes] = []
        hashed: list[bytes] = []
        for name, extra in _SIGNED:
            found = fields_by_name.get(name, [])
            include += [name] * (len(found) + extra)
            # A verifier takes the fields of one name from the bottom up, then "empty" for each name left over.
            hashed += [_relaxed(name, value) for value in reversed(found)]
        body_hash = base64.b64encode(hashlib.sha256(_POLICY.canonicalize_body(body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", b"/".join(_CANONICALIZATION)),
            (b"d", self.domain.encode()),
            (b"q", b"dns/txt"),
            (b"s", self.selector.encode()),
            (b"t", str(int(time.time() if now is None else now)).encode()),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            (b"b", b""),
        ]
        # What is hashed (RFC 6376 3.5, 3.7): each signed header in relaxed form, then this header in relaxed form
        # with an empty b= and no final CRLF. Folding only ever turns a space into CRLF + space, which the relaxed
        # form turns back, so the unfolded value is what a verifier hashes.
        digest = hashlib.sha256()
        for line in hashed:
            digest.update(line)
        digest.update(b"dkim-signature:" + b"; ".join(b"=".join(f) for f in fields))
        signature = self.key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        fields[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(_HEADER_NAME))
        return _HEADER_NAME + b": " + value


def _headers(head: bytes) -> dict[bytes, list[bytes]]:
    """Lower-cased name → the raw values (continuation lines included) of its fields, top to bottom."""
    found: dict[bytes, list[bytes]] = {}
    current: list[bytes] | None = None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and current is not None:
            current[-1] += b"\r\n" + line
            continue
        field, colon, value = line.partition(b":")
        if not colon or not field or b" " in field:
            raise ValueError(f"not a header line: {line[:40]!r}")
        current = found.setdefault(field.lower(), [])
        current.append(value)
    return found


@lru_cache(maxsize=1024)
def _relaxed(name: bytes, value: bytes) -> bytes:
    # Most signed headers are the edition's own, the same for every recipient: the cache makes those free.
    return name + b":" + _WSP.sub(b" ", _LINE_BREAK.sub(b"", value)).strip() + b"\r\n"


def signer_from_env(default_domain: str, environ: Mapping[str, str] | None = None) -> DKIMSigner | None:
    """The DKIM signer the environment asks for, or None when no key is configured.

    DIGEST_DKIM_KEY_FILE names a PEM RSA private key, DIGEST_DKIM_SELECTOR its selector; DIGEST_DKIM_DOMAIN is the
    signing domain (default: the sender's domain). The key stays in its file: only its path is configuration.
    """
    env = os.environ if environ is None else environ
    key_file = env.get(KEY_FILE_ENV)
    if not key_file:
        if env.get(SELECTOR_ENV):
            raise ConfigError(f"{SELECTOR_ENV} is set but {KEY_FILE_ENV} is not; set both to sign with DKIM")
        return None
    selector = env.get(SELECTOR_ENV)
    if not selector:
        raise ConfigError(f"{KEY_FILE_ENV} is set but {SELECTOR_ENV} is not (the selector of the DNS record "
                          "<selector>._domainkey.<domain>)")
    domain = env.get(DOMAIN_ENV) or default_domain
    path = Path(key_file)
    try:
        pem = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read the DKIM key {path} ({KEY_FILE_ENV}): {err.strerror}") from None
    try:
        return DKIMSigner.from_pem(pem, domain=domain, selector=selector)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"{path} ({KEY_FILE_ENV}) is not a usable unencrypted PEM RSA private key: {err}") from None
