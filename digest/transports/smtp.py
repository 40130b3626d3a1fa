"""One SMTP connection with the stdlib client: TLS as the URL says, AUTH, and a pipelined send for bulk mail.

smtplib does the parts that are easy to get wrong (TLS, STARTTLS, AUTH, reading replies); the per-message path
is our own, because `sendmail` re-scans every message twice with regular expressions (line endings, leading dots)
and waits for a reply after each command. Our messages are built with CRLF line endings, so we only stuff leading
dots, and when the server offers PIPELINING (RFC 2920) MAIL, RCPT and DATA go out in one write: two round trips
per message instead of four. The connection pool (`digest.transports.pool`) runs several of these side by side.
"""

from __future__ import annotations

import contextlib
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from functools import cache

from digest.errors import RecipientRefused, SendError, TransportError, TransportRefused
from digest.transports import Envelope

_BARE_LF = re.compile(rb"(?<!\r)\n")


@cache
def _local_hostname() -> str:
    # smtplib asks for the FQDN on every connection; with a slow resolver that stalls each reconnect.
    return socket.getfqdn()


def tls_context(verify: bool = True) -> ssl.SSLContext:
    """Certificates checked against the system store (or SSL_CERT_FILE), unless the URL says `?verify=false`."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def wire_data(data: bytes) -> bytes:
    """The message as it goes over the wire after DATA, up to the final dot: CRLF lines, leading dots doubled."""
    if data.count(b"\n") != data.count(b"\r\n"):
        data = _BARE_LF.sub(b"\r\n", data)
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data if data.endswith(b"\r\n") else data + b"\r\n"


class SMTPTransport:
    """One connection to a relay, opened on first use and kept for many messages."""

    def __init__(self, *, host: str, port: int, username: str | None = None, password: str | None = None,
                 implicit_tls: bool = False, require_starttls: bool = False, timeout: float = 30.0,
                 verify: bool = True) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.implicit_tls = implicit_tls
        self.require_starttls = require_starttls
        self.timeout = timeout
        self.verify = verify
        self.description = f"SMTP {host}:{port}"
        self._client: smtplib.SMTP | None = None
        self._pipelining = False
        self._smtputf8 = False
        self._tls = tls_context(verify)

    def clone(self, *, timeout: float | None = None) -> SMTPTransport:
        """A new, unopened connection to the same relay: the pool gives each of its workers one."""
        return SMTPTransport(host=self.host, port=self.port, username=self.username, password=self._password,
                             implicit_tls=self.implicit_tls, require_starttls=self.require_starttls,
                             timeout=self.timeout if timeout is None else timeout, verify=self.verify)

    def __enter__(self) -> SMTPTransport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._client is not None

    def open(self) -> None:
        if self._client is not None:
            return
        client: smtplib.SMTP | None = None
        try:
            if self.implicit_tls:
                client = smtplib.SMTP_SSL(self.host, self.port, local_hostname=_local_hostname(),
                                          timeout=self.timeout, context=self._tls)
            else:
                client = smtplib.SMTP(self.host, self.port, local_hostname=_local_hostname(), timeout=self.timeout)
            client.ehlo()
            if not self.implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=self._tls)
                    client.ehlo()
                elif self.require_starttls:
                    raise TransportRefused(f"{self.description} does not offer STARTTLS, which the URL requires "
                                         "(smtp+starttls://)")
            if self.username:
                client.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as err:
            _close_quietly(client)
            raise TransportRefused(f"{self.description} refused the login for {self.username!r}: "
                                 f"{err.smtp_code} {_text(err.smtp_error)}") from None
        except ssl.SSLCertVerificationError as err:
            _close_quietly(client)
            raise TransportRefused(f"cannot connect to {self.description}: the server's certificate is not trusted "
                                 f"({err.verify_message}); add its CA with SSL_CERT_FILE, or, for a relay you "
                                 "trust on a private network only, add ?verify=false to the transport URL") from None
        except TransportError:
            _close_quietly(client)
            raise
        except (smtplib.SMTPException, OSError) as err:
            _close_quietly(client)
            raise TransportError(f"cannot connect to {self.description}: {err or type(err).__name__}") from None
        with contextlib.suppress(OSError):
            # The final dot may go out as a write of its own (see `send`); Nagle would hold it back for an ACK.
            client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._pipelining = client.has_extn("pipelining")
        self._smtputf8 = client.has_extn("smtputf8")
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            # If the server went away first there is nothing left to close politely.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._client.quit()
            self._drop()

    def send(self, envelope: Envelope, *, gate: Callable[[], None] | None = None) -> None:
        """Deliver one message, or raise SendError with the server's code (None when the connection failed).

        RecipientRefused is the server refusing the address itself. A dropped or timed-out connection is closed
        here, so the next send reconnects. `gate`, if given, is called before the final dot, the moment the server
        takes responsibility for the message: the sender uses it to wait until the ledger has recorded the previous
        message's fate. If it raises, the connection is dropped and the server discards the unfinished message.
        """
        self.open()
        client = self._client
        assert client is not None
        utf8 = not (envelope.sender.isascii() and envelope.recipient.isascii())
        commands = (
            ("MAIL", b"MAIL FROM:<" + envelope.sender.encode() + b">"
             + (b" SMTPUTF8" if utf8 and self._smtputf8 else b"") + b"\r\n"),
            ("RCPT", b"RCPT TO:<" + envelope.recipient.encode() + b">\r\n"),
            ("DATA", b"DATA\r\n"),
        )
        try:
            if self._pipelining:
                client.send(b"".join(line for _, line in commands))
            refusal: tuple[str, int, bytes] | None = None
            for verb, line in commands:
                if not self._pipelining:
                    if refusal is not None:
                        break
                    client.send(line)
                code, reply = client.getreply()
                if code == 421:
                    raise self._closing(envelope, code, _text(reply))
                accepted = code == 354 if verb == "DATA" else code in (250, 251)
                if not accepted and refusal is None:
                    refusal = (verb, code, reply)
                elif verb == "DATA" and accepted and refusal is not None:
                    # A server that takes DATA after refusing every recipient gets an empty message, then RSET.
                    client.send(b".\r\n")
                    client.getreply()
            if refusal is not None:
                self._reset()
                verb, code, reply = refusal
                error = RecipientRefused if verb == "RCPT" else SendError
                raise error(f"{code} {_text(reply)}", recipient=envelope.recipient, code=code)
            wire = envelope.wire if envelope.wire is not None else wire_data(envelope.data)
            if gate is None:
                client.send(wire + b".\r\n")
            else:
                client.send(wire)
                try:
                    gate()
                except BaseException:
                    self._drop()
                    raise
                client.send(b".\r\n")
            code, reply = client.getreply()
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException, OSError) as err:
            self._drop()
            raise SendError(f"connection lost: {err or type(err).__name__}", recipient=envelope.recipient) from None
        if code == 421:
            raise self._closing(envelope, code, _text(reply))
        if code != 250:
            raise SendError(f"{code} {_text(reply)}", recipient=envelope.recipient, code=code)

    def _closing(self, envelope: Envelope, code: int, text: str) -> SendError:
        # 421: the server is closing the channel; whatever we do next needs a new connection.
        self._drop()
        return SendError(f"{code} {text}", recipient=envelope.recipient, code=code)

    def _reset(self) -> None:
        assert self._client is not None
        try:
            self._client.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        client, self._client = self._client, None
        _close_quietly(client)


def _close_quietly(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(OSError):
            client.close()


def _text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())
