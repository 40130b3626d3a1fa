"""Subscriber lists from CSV: validated addresses, merged duplicates, errors with line numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from digest.errors import AddressError, SubscriberImportError

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
    if any(ch in name for ch in "\r\n") or any(ord(ch) < 32 for ch in name):
        raise ValueError("the name contains a line break or control character")
    return " ".join(name.split())


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
    for row in reader:
        line = reader.line_num
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # blank line
        try:
            rows.append((normalise_address(row.get("email") or ""), clean_name(row.get("name") or "")))
        except ValueError as err:
            problems.append((line, str(err)))
    if problems:
        raise SubscriberImportError(path, problems)
    return rows
