"""Delivery over SMTP with the stdlib client: STARTTLS when offered, AUTH from DIGEST_SMTP_PASSWORD."""

from __future__ import annotations

import contextlib
import smtplib
import ssl

from digest.errors import SendError, TransportError
from digest.transports import Envelope


class SMTPTransport:
    def __init__(self, *, host: str, port: int, username: str | None = None, password: str | None = None,
                 implicit_tls: bool = False, require_starttls: bool = False, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.implicit_tls = implicit_tls
        self.require_starttls = require_starttls
        self.timeout = timeout
        self.description = f"SMTP {host}:{port}"
        self._client: smtplib.SMTP | None = None
        # Certificates are checked against the system store (or SSL_CERT_FILE); never switched off silently.
        self._tls = ssl.create_default_context()

    def __enter__(self) -> SMTPTransport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self._client is not None:
            return
        try:
            if self.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                        context=self._tls)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            client.ehlo()
            if not self.implicit_tls:
                if client.has_extn("starttls"):
                    client.starttls(context=self._tls)
                    client.ehlo()
                elif self.require_starttls:
                    client.close()
                    raise TransportError(f"{self.description} does not offer STARTTLS, which the URL requires")
            if self.username:
                client.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as err:
            raise TransportError(f"{self.description} refused the login for {self.username!r}: "
                                 f"{err.smtp_code} {_text(err.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as err:
            raise TransportError(f"cannot connect to {self.description}: {err}") from None
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            # If the server went away first there is nothing left to close politely.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._client.quit()
            self._client = None

    def send(self, envelope: Envelope) -> None:
        self.open()
        assert self._client is not None
        try:
            refused = self._client.sendmail(envelope.sender, [envelope.recipient], envelope.data)
        except smtplib.SMTPRecipientsRefused as err:
            code, reply = err.recipients.get(envelope.recipient, (None, b""))
            raise SendError(f"{code} {_text(reply)}", recipient=envelope.recipient, code=code) from None
        except smtplib.SMTPResponseException as err:
            self._reset()
            raise SendError(f"{err.smtp_code} {_text(err.smtp_error)}", recipient=envelope.recipient,
                            code=err.smtp_code) from None
        except (smtplib.SMTPServerDisconnected, OSError) as err:
            self._drop()
            raise SendError(f"connection lost: {err}", recipient=envelope.recipient) from None
        if refused:
            code, reply = refused[envelope.recipient]
            raise SendError(f"{code} {_text(reply)}", recipient=envelope.recipient, code=code)

    def _reset(self) -> None:
        try:
            assert self._client is not None
            self._client.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
