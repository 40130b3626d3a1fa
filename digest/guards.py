"""Send-time guards: what would make a send insecure or a message broken in the inbox, one line each naming the fix.

A pure function over what the caller already knows (settings, the rendered size, the kind of transport, whether a
DKIM key signs). Each guard is a warning; `sending.require: [https, dkim, unclipped]` turns the named ones into
refusals, and a send with a refusal sends nothing. `digest preview` prints the same lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from digest.config import Settings

Rule = Literal["https", "dkim", "unclipped"]

# Gmail cuts off HTML larger than about 102 KB ("[Message clipped]"), hiding the footer with the unsubscribe link.
# The limit here leaves room for the per-recipient values (addresses, signed links) filled in after rendering.
CLIP_LIMIT_BYTES = 100 * 1024
SMTP_SCHEMES = frozenset({"smtp", "smtps", "smtp+starttls"})


@dataclass(frozen=True)
class Guard:
    rule: Rule
    message: str


@dataclass(frozen=True)
class Guards:
    warnings: tuple[Guard, ...] = ()
    refusals: tuple[Guard, ...] = ()

    def lines(self, *, sending: bool = True) -> list[str]:
        """What a terminal shows, refusals first; `sending=False` (a preview) says what a send would do."""
        refusal = "refused" if sending else "`digest send` will refuse"
        return ([f"{refusal} ({g.rule} is in sending.require): {g.message}" for g in self.refusals]
                + [f"warning: {g.message}" for g in self.warnings])


def over_smtp(transport_url: str) -> bool:
    """Whether a transport URL (`smtp://…`, `outbox:DIR`) delivers to a relay, i.e. to real inboxes."""
    return urlsplit(transport_url).scheme in SMTP_SCHEMES


def check_send(settings: Settings, *, html_bytes: int, smtp: bool, signed: bool) -> Guards:
    """The guards for one send: `smtp` when it goes to a relay, `signed` when a DKIM key signs it."""
    found: list[Guard] = []
    if smtp and settings.base_url.scheme != "https":
        found.append(Guard("https", f"base_url {settings.public_url} is not https: Gmail and Yahoo ignore one-click "
                                    "unsubscribe (RFC 8058) without it; set base_url (or DIGEST_BASE_URL) to the "
                                    "https address of `digest serve`"))
    if smtp and not signed:
        found.append(Guard("dkim", "no DKIM key: Gmail and Yahoo reject or junk unsigned bulk mail; set "
                                   "DIGEST_DKIM_KEY_FILE and DIGEST_DKIM_SELECTOR (see README, Sending)"))
    if html_bytes > CLIP_LIMIT_BYTES:
        found.append(Guard("unclipped", f"the HTML is {html_bytes / 1024:.0f} KB: Gmail clips messages over about "
                                        "102 KB and hides the unsubscribe link; lower max_articles"))
    required = set(settings.sending.require)
    return Guards(warnings=tuple(g for g in found if g.rule not in required),
                  refusals=tuple(g for g in found if g.rule in required))
