"""Reading the links a subscriber would click out of received messages."""

from __future__ import annotations

import re
from email.message import EmailMessage


def list_unsubscribe_url(message: EmailMessage) -> str:
    found = re.search(r"<(https?://[^>]+)>", str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1)


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def link_in(text: str, path: str) -> str:
    """The first http(s) link whose path starts with `path` (e.g. '/innstillinger/')."""
    found = re.search(r"https?://[^\s\"'<>]+" + re.escape(path) + r"[A-Za-z0-9_.-]+", text)
    assert found, f"no {path} link in the message"
    return found.group(0)
