"""Per-recipient substitution in the encoded message gives exactly what a full rebuild would."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from digest.message import build_template
from digest.models import Recipient
from tests.test_render import kultur_edition


def decoded_parts(data: bytes) -> tuple[str, str, email.message.EmailMessage]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content(), message


RECIPIENTS = [
    Recipient(subscriber_id=1, email="kari@example.org", name="Kari Nordmann", message_id="<a@ks.no>",
              unsubscribe_url="https://kultur.example.org/avmeld/MTprdWx0dXI.abc_-DEF",
              unsubscribe_mailto="mailto:unsubscribe@ks.no?subject=avmeld%20MTprdWx0dXI.abc_-DEF",
              preferences_url="https://kultur.example.org/innstillinger/MTprdWx0dXI.xyz_-GHI"),
    Recipient(subscriber_id=2, email="bjorn.aase@xn--b-5ga.kommune.no", name="Bjørn Æsøy-Ålesund <og=co> & " + "x" * 90,
              message_id="<b@ks.no>",
              unsubscribe_url="https://kultur.example.org/avmeld/" + "A" * 120 + "?a=1&b=2",
              unsubscribe_mailto="mailto:unsubscribe@ks.no?subject=avmeld",
              preferences_url="https://kultur.example.org/innstillinger/" + "B" * 120 + "?c=3&d=4"),
    Recipient(subscriber_id=3, email="p@example.org", name="", message_id="<c@ks.no>",
              unsubscribe_url="https://kultur.example.org/avmeld/x", unsubscribe_mailto="mailto:u@ks.no",
              preferences_url="https://kultur.example.org/innstillinger/y"),
]


@pytest.mark.parametrize("recipient", RECIPIENTS, ids=["plain", "long-and-odd", "no-name"])
def test_substituted_bytes_decode_to_the_personalised_edition(project, recipient):
    import html as html_module

    rendered = kultur_edition(project)
    template = build_template(rendered, __import__("digest.config", fromlist=["x"]).load_settings(
        project / "schedule.yaml").digest("kultur"), now=datetime(2019, 7, 1, 5, tzinfo=UTC))
    data = template.personalise(recipient)
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    text, html, message = decoded_parts(data)

    greeting = f"Hei, {recipient.name}!" if recipient.name else "Hei!"
    marker = rendered.placeholders.marker
    expected_text = (rendered.text.replace(marker("greeting"), greeting).replace(marker("email"), recipient.email)
                     .replace(marker("unsubscribe_url"), recipient.unsubscribe_url)
                     .replace(marker("preferences_url"), recipient.preferences_url))
    expected_html = (rendered.html.replace(marker("greeting"), html_module.escape(greeting))
                     .replace(marker("email"), html_module.escape(recipient.email))
                     .replace(marker("unsubscribe_url"), html_module.escape(recipient.unsubscribe_url))
                     .replace(marker("preferences_url"), html_module.escape(recipient.preferences_url)))
    assert text.replace("\r\n", "\n") == expected_text
    assert html.replace("\r\n", "\n") == expected_html.replace("\r\n", "\n")
    assert message["To"].addresses[0].addr_spec == recipient.email
    assert message["Message-ID"] == recipient.message_id


def test_at_signs_in_article_text_are_not_placeholders(project):
    rendered = kultur_edition(project)
    sneaky = replace(rendered, text=rendered.text + "Skriv til @@email@@ eller @@ukjent@@.\n")
    from digest.config import load_settings

    template = build_template(sneaky, load_settings(project / "schedule.yaml").digest("kultur"),
                              now=datetime(2019, 7, 1, tzinfo=UTC))
    text, _, _ = decoded_parts(template.personalise(RECIPIENTS[0]))
    assert "@@ukjent@@" in text
