"""A real aiosmtpd server whose replies a test scripts per recipient: 4xx/5xx, a dropped connection, silence.

Actions for successive transactions to one address, e.g. `{"kari@example.org": ["DATA:421 4.3.2 Busy"]}`:
  "RCPT:<reply>"     answer RCPT TO with <reply> (e.g. "550 5.1.1 No such user")
  "DATA:<reply>"     take the message, then answer the final dot with <reply> (nothing is delivered)
  "DATA:disconnect"  take the message, then drop the connection without a reply
  "DATA:hang"        take the message and never answer (until the server stops)
An address with no actions left is accepted (250) and the message recorded in `received`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


@dataclass
class Delivered:
    recipient: str
    data: bytes
    peer: Any
    login: str | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class ScriptedHandler:
    script: dict[str, list[str]] = field(default_factory=dict)
    pipelining: bool = True
    delay: float = 0.0  # seconds to think before accepting each message (lets a test kill the client mid-run)
    received: list[Delivered] = field(default_factory=list)
    attempts: dict[str, list[Any]] = field(default_factory=dict)  # address → peer of each transaction

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # aiosmtpd's hook names
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        actions = self.script.get(address) or []
        action = actions.pop(0) if actions else "accept"
        self.attempts.setdefault(address, []).append(session.peer)
        if action.startswith("RCPT:"):
            return action.removeprefix("RCPT:")
        envelope.rcpt_tos.append(address)
        envelope.scripted_action = action  # for DATA: one recipient per transaction
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        action = getattr(envelope, "scripted_action", "accept")
        if action == "DATA:disconnect":
            server.transport.close()
            return "421 never seen"
        if action == "DATA:hang":
            await asyncio.sleep(3600)
        if action.startswith("DATA:"):
            return action.removeprefix("DATA:")
        if self.delay:
            await asyncio.sleep(self.delay)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Delivered(envelope.rcpt_tos[0], envelope.original_content, session.peer, login))
        return "250 2.0.0 Accepted"

    def copies(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for delivered in self.received:
            counts[delivered.recipient] = counts.get(delivered.recipient, 0) + 1
        return counts


def password_check(login: str, password: str):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data == (login.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


@contextmanager
def scripted_server(handler: ScriptedHandler, **smtp_options: Any) -> Iterator[Controller]:
    """Start aiosmtpd on 127.0.0.1 with `handler`; `smtp_options` go to aiosmtpd (tls_context, ssl_context, …)."""
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False, **smtp_options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
