"""One family of errors; each carries the facts it is about and reads as a complete sentence."""

from __future__ import annotations

import re
from pathlib import Path


class DigestError(Exception):
    """Base of every error the CLI turns into one clean line and a non-zero exit."""


class ConfigError(DigestError, ValueError):
    """schedule.yaml (or the environment) holds a value we cannot use."""

    def __init__(self, message: str, *, path: Path | str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        where = self.path or ""
        if line is not None:
            where += f":{line}"
        prefix = f"{where}: " if where else ""
        field = f"{key}: " if key else ""
        super().__init__(f"{prefix}{field}{message}")


class ContentError(DigestError, ValueError):
    """A content file (Markdown + front matter) is missing a field or has a wrong one."""

    def __init__(self, message: str, *, path: Path | str, field: str | None = None,
                 line: int | None = None) -> None:
        self.path = str(path)
        self.field = field
        self.line = line
        self.problem = message
        where = self.path if line is None else f"{self.path}:{line}"
        if field:
            where += f": field '{field}'"
        super().__init__(f"{where}: {message}")


class ContentProblems(ContentError):
    """Several content files are bad (or one is); each problem names its file, line and field."""

    def __init__(self, problems: list[ContentError]) -> None:
        first = problems[0]
        self.problems = problems
        super().__init__(first.problem, path=first.path, field=first.field, line=first.line)
        count = f"{len(problems)} content files have problems: " if len(problems) > 1 else ""
        self.args = (count + "; ".join(str(problem) for problem in problems),)

    def __str__(self) -> str:
        return str(self.args[0])


class RenderError(DigestError):
    """The e-mail could not be rendered, or the result is broken (e.g. MJML tags left in the HTML)."""


class SubscriberImportError(DigestError, ValueError):
    """A subscriber CSV has bad rows; nothing was imported."""

    def __init__(self, path: Path | str, problems: list[tuple[int, str]]) -> None:
        self.path = str(path)
        self.problems = problems
        first_line, first_problem = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"{self.path}:{first_line}" if first_line else self.path  # line 0: the file as a whole
        super().__init__(f"{where}: {first_problem}{more}; nothing was imported")


class SendError(DigestError):
    """A recipient could not be sent to. `code` is the SMTP reply code when the server gave one."""

    def __init__(self, message: str, *, recipient: str | None = None, code: int | None = None) -> None:
        self.recipient = recipient
        self.code = code
        super().__init__(message)

    @property
    def temporary(self) -> bool:
        """4xx replies, timeouts and dropped connections are worth retrying; 5xx are not."""
        return self.code is None or 400 <= self.code < 500


class TransportError(DigestError, ConnectionError):
    """The transport itself failed (cannot connect, TLS refused, authentication failed)."""


class TransportRefused(TransportError):
    """The relay turned us away for a reason that trying again cannot fix: the login, the certificate, no STARTTLS."""
class AddressError(DigestError, ValueError):
    """An e-mail address that is not one."""


class NotFound(DigestError, LookupError):
    """A digest, edition or subscriber named on the command line does not exist."""


class RecipientRefused(SendError):
    """The server refused the recipient address itself (its reply to RCPT TO), e.g. `550 5.1.1 no such user`."""

    @property
    def unknown_user(self) -> bool:
        """Does the reply say the mailbox does not exist, so that more mail to it is pointless?

        An enhanced status code decides when the server gave one (5.1.x: bad address or mailbox, 5.2.1: mailbox
        disabled); without one, the classic "no such user" family 550/551/553 does. A 552 (mailbox full) or a
        policy refusal (5.7.x) is a failure for this edition, not a reason to stop writing to the person.
        """
        if self.code is None or not 500 <= self.code < 600:
            return False
        enhanced = _ENHANCED.match(str(self).partition(" ")[2])
        if enhanced:
            status = enhanced.group(1)
            return status.startswith("5.1.") or status == "5.2.1"
        return self.code in (550, 551, 553)


_ENHANCED = re.compile(r"([245]\.\d{1,3}\.\d{1,3})\b")
class SourceError(DigestError):
    """A feed or a page gave nothing usable: no answer, an HTTP error, broken XML, selectors that match nothing."""

    def __init__(self, message: str, *, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)


class AllSourcesFailed(DigestError):
    """Every source of a digest failed: there is nothing to send, and saying so beats an empty edition."""

    def __init__(self, digest: str, problems: list[str]) -> None:
        self.digest = digest
        self.problems = problems
        super().__init__(f"every source of '{digest}' failed, nothing was sent: " + "; ".join(problems))


class DraftError(DigestError):
    """A change to a stored edition cannot be made. `reason` says why in one word, for the desk to word it:
    not_found, frozen (a send has started), unknown_article, too_few, too_long, conflict (changed meanwhile)."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class NotApproved(DigestError):
    """A digest with an approval rule was asked to send an edition no editor (or auto_after) has approved."""

    def __init__(self, digest: str, key: str, state: str) -> None:
        self.digest = digest
        self.key = key
        self.state = state
        words = {"draft": "waits for approval", "held": "is held", "expired": "expired without approval"}
        super().__init__(f"{digest} {key} {words.get(state, state)}; `digest approve {digest} {key}` sends it")
