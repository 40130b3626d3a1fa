"""The one way mail leaves: a built message, signed with DKIM when a key is configured, in an envelope from the
sender's return path, handed to the transport. Editions, test copies and confirmation e-mails all go through here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from digest.config import Sender, Settings
from digest.message import MessageTemplate, recipient_for
from digest.signing import DKIMSigner, signer_from_env
from digest.transports import Envelope, Transport
from digest.transports.pool import Job


@dataclass(frozen=True)
class Outgoing:
    """What every message of one sender gets on its way out: the envelope sender and, with a key, a signature."""

    envelope_from: str
    signer: DKIMSigner | None = None

    @classmethod
    def for_sender(cls, sender: Sender, environ: Mapping[str, str] | None = None) -> Outgoing:
        """The sender's mail path as configured: return path from schedule.yaml, DKIM key from the environment."""
        return cls(envelope_from=sender.envelope_from, signer=signer_from_env(sender.domain, environ))

    def envelope(self, recipient: str, message: bytes, batch: str, wire: bytes | None = None) -> Envelope:
        """The message (and its SMTP wire form, if the builder has one) signed and addressed."""
        if self.signer is not None:
            # The signature covers the message as the receiver reads it, i.e. before dot-stuffing; the header
            # itself has no line that starts with a dot.
            header = self.signer.signature(message)
            message = header + message
            wire = None if wire is None else header + wire
        return Envelope(self.envelope_from, recipient, message, batch, wire)

    def send(self, transport: Transport, recipient: str, message: bytes, batch: str) -> None:
        """One message to one address over a transport the caller has opened."""
        transport.send(self.envelope(recipient, message, batch))


def edition_builder(settings: Settings, name: str, template: MessageTemplate, secret: bytes, outgoing: Outgoing,
                    batch: str, *, for_smtp: bool = False) -> Callable[[Job], Envelope]:
    """Job → envelope with the personalised, signed message of an edition. Runs in the pool's threads.

    `for_smtp` also gives the envelope its wire form, dot-stuffed from pieces stuffed once per edition.
    """
    digest = settings.digest(name)

    def build(job: Job) -> Envelope:
        recipient = recipient_for(settings, name, digest, template, secret, subscriber_id=job.subscriber_id,
                                  email=job.email, name=job.name)
        if for_smtp:
            data, wire = template.personalise_for_smtp(recipient)
            return outgoing.envelope(job.email, data, batch, wire)
        return outgoing.envelope(job.email, template.personalise(recipient), batch)

    return build
