"""Subscriber lists from CSV: validated addresses, merged duplicates, errors with line numbers."""

from __future__ import annotations

import csv
import io
import re
from email import policy
from email.errors import HeaderParseError
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import AddressError, SubscriberImportError

# Names are capped where they enter (sign-up, preferences, CSV import); see clean_name.
MAX_NAME_CHARS = 200
MAX_NAME_BYTES = 400
# Control characters, C0 and C1 (line breaks included), and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

REQUIRED_COLUMNS = ("email",)
OPTIONAL_COLUMNS = ("name",)


def normalise_address(address: str) -> str:
    """The address as we store it; raises AddressError with a reason people understand."""
    try:
        # No SMTPUTF8: many relays refuse it. Domains with æøå still work, stored in their ASCII (IDNA) form.
        result = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as err:
        raise AddressError(f"{address.strip()!r} is not a valid e-mail address: {err}") from None
    return result.ascii_email or result.normalized


def clean_name(name: str) -> str:
    """A subscriber's name as it may go into a `To:` header: decoded, one line, at most MAX_NAME_CHARS characters.

    A name written as MIME encoded words (`=?utf-8?q?…?=`) is decoded first, as a mail client would show it, so a
    CR/LF hidden in one is seen and refused here, before anything is stored or sent; what is kept is the decoded
    text. Long names are cut (a name of 10 000 characters from a CSV would make a `To:` line longer than the 998
    bytes RFC 5322 allows): at MAX_NAME_CHARS characters, and at MAX_NAME_BYTES bytes of UTF-8, so that even
    four-byte characters fit the line once encoded.
    """
    decoded = _decoded(name)
    if _CONTROL.search(name) or _CONTROL.search(decoded):
        raise ValueError("the name contains a line break or control character")
    cleaned = " ".join(decoded.split())[:MAX_NAME_CHARS]
    while len(cleaned.encode("utf-8")) > MAX_NAME_BYTES:
        cleaned = cleaned[:-1]
    return cleaned.rstrip()


def _decoded(name: str) -> str:
    if "=?" not in name:
        return name
    try:
        # The email package's own header parser: it decodes the encoded words and leaves the rest of the text as
        # it is (decode_header + make_header would choke on plain non-ASCII text beside an encoded word).
        return str(policy.default.header_factory("X-Name", name))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        raise ValueError("the name has an encoded word (=?…?=) that cannot be read") from None


def read_subscriber_csv(path: Path) -> list[tuple[str, str]]:
    """Rows of (email, name). Every bad row is collected; any bad row means nothing is returned."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SubscriberImportError(path, [(0, "file not found")]) from None
    except UnicodeDecodeError:
        raise SubscriberImportError(path, [(1, "not UTF-8 text (save the file as UTF-8 CSV)")]) from None
    except OSError as err:  # a folder, no permission, …
        raise SubscriberImportError(path, [(0, f"cannot read the file: {err.strerror or err}")]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise SubscriberImportError(path, [(1, f"the header must have the columns email,name (found: "
                                               f"{','.join(columns) or 'nothing'})")])
    reader.fieldnames = columns
    rows: list[tuple[str, str]] = []
    problems: list[tuple[int, str]] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                continue  # blank line
            try:
                rows.append((normalise_address(row.get("email") or ""), clean_name(row.get("name") or "")))
            except ValueError as err:
                problems.append((line, str(err)))
    except csv.Error as err:  # the csv module stops here; so do we, naming the line it got to
        problems.append((reader.line_num + 1, _csv_problem(err)))  # the line it could not finish
    if problems:
        raise SubscriberImportError(path, problems)
    return rows


def _csv_problem(err: csv.Error) -> str:
    if "field larger than field limit" in str(err):
        limit = f"{csv.field_size_limit():,}".replace(",", " ")
        return f"a field is longer than {limit} characters (is a closing quote missing?)"
    return f"not a CSV file we can read ({err})"
