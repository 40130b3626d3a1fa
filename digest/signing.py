"""DKIM signatures for personalised messages: dkimpy's canonicalisation, `cryptography`'s RSA.

`dkim.sign` spends most of its ~12 ms per message in pure-Python RSA; the same signature from `cryptography` (OpenSSL)
takes a fraction of a millisecond and releases the GIL, so the pool's threads sign side by side. Everything that
decides what the signature covers (header selection, relaxed/simple canonicalisation, folding, the `b=` rule) is
dkimpy's own code, so a dkimpy verifier agrees with us by construction; the tests check that it does.
"""

from __future__ import annotations

import base64
import hashlib
import os
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

# What a receiver needs to trust: who it is from and to, what it says, when, which message, and how to leave.
# The structure headers keep the body's meaning; a header the message lacks is simply not listed.
SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post",
    "reply-to", "list-id", "mime-version", "content-type",
)
_SIGNED = tuple(name.encode() for name in SIGNED_HEADERS)
_CANONICALIZATION = (b"relaxed", b"simple")
_POLICY = CanonicalizationPolicy.from_c_value(b"/".join(_CANONICALIZATION))
_HEADER_NAME = b"DKIM-Signature"


@lru_cache(maxsize=1024)
def _relaxed(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    return _POLICY.canonicalize_headers([(name, value)])[0]


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
        headers = dkim.rfc822_parse(head + b"\r\n\r\n")[0]
        present = {name.lower() for name, _ in headers}
        include = tuple(name for name in _SIGNED if name in present)
        # Only the signed headers are canonicalised (each on its own, as dkimpy does), and most of them are the
        # edition's own, the same for every recipient: remember those.
        signed = [_relaxed(bytes(name), bytes(value)) for name, value in dkim.select_headers(headers, include)]
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
            # As dkimpy does: a placeholder long enough to put b= on a line of its own, so the real value fits.
            (b"b", b"0" * 60),
        ]
        # The signature header is hashed as it will be sent, with an empty b= (RFC 6376 3.7); dkimpy's helpers
        # fold and hash it exactly as its verifier will.
        value = dkim.RE_BTAG.sub(b"\\1", dkim.fold(b"; ".join(b"=".join(f) for f in fields),
                                                   namelen=len(_HEADER_NAME)))
        digest = hashlib.sha256()
        dkim.hash_headers(digest, _POLICY, signed, include, (_HEADER_NAME, b" " + value), dict(fields))
        signature = self.key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        fields[-1] = (b"b", base64.b64encode(signature))
        value = dkim.fold(b"; ".join(b"=".join(f) for f in fields) + b"\r\n", namelen=len(_HEADER_NAME))
        return _HEADER_NAME + b": " + value


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
