"""Header and body encoding at every length: Subjects folded without empty encoded words (RFC 2047), quoted-printable
lines of at most 76 characters whatever a recipient's name, address or links (RFC 2045), and decoding gives back
exactly what went in."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import load_settings
from digest.message import build_template, encode_subject
from digest.models import Article, Edition, Placeholders, Recipient, RenderedEdition
from tests.conftest import REPO

EMPTY_ENCODED_WORD = re.compile(rb"=\?[^?\s]*\?[qQbB]\?\?=")
DIGEST = load_settings(REPO / "schedule.yaml").digest("kultur")
NOW = datetime(2019, 7, 1, 5, tzinfo=UTC)


def rendered(subject: str, placeholders: Placeholders | None = None) -> RenderedEdition:
    """A small edition whose parts hold every placeholder, as the templates write them."""
    personal = placeholders or Placeholders.fresh()
    article = Article(url="https://www.ks.no/a/", title=subject, teaser="Tekst.", source="content",
                      published=datetime(2019, 6, 30, 8, tzinfo=ZoneInfo("Europe/Oslo")))
    edition = Edition(digest="kultur", key="2019-07-01", date=date(2019, 7, 1), since=NOW, until=NOW,
                      articles=(article,))
    body = (f"{personal.greeting} Nytt om kultur.\nDu får denne e-posten fordi {personal.email} abonnerer.\n"
            f"Meld deg av: {personal.unsubscribe_url}\nEndre innstillinger: {personal.preferences_url}\n")
    page = (f"<!doctype html><html><body><p>{personal.greeting} Nytt</p><p>fordi {personal.email}</p>"
            f'<a href="{personal.unsubscribe_url}">Meld deg av</a> · <a href="{personal.preferences_url}">Endre</a>'
            "</body></html>")
    return RenderedEdition(edition=edition, subject=subject, preheader="", html=page, text=body,
                           placeholders=personal)


def recipient(name: str = "Kari", address: str = "kari@example.org", url: str = "https://ks.no/avmeld/x",
              preferences: str = "https://ks.no/innstillinger/y") -> Recipient:
    return Recipient(subscriber_id=1, email=address, name=name, message_id="<a@ks.no>", unsubscribe_url=url,
                     unsubscribe_mailto="mailto:avmeld@ks.no?subject=avmeld", preferences_url=preferences)


def subject_field(data: bytes) -> bytes:
    found = re.search(rb"(?m)^Subject: (.*(?:\r\n[ \t].*)*)\r\n", data)
    assert found
    return found.group(1)


def assert_subject_ok(subject: str, prefix: str = "", *, whole_message: bool = True) -> None:
    if whole_message:
        data = build_template(rendered(subject), DIGEST, now=NOW, subject_prefix=prefix).personalise(recipient())
    else:  # the same encoder build_template uses for the Subject, without the rest of the message (a fast sweep)
        data = b"Subject: " + encode_subject(prefix + subject).encode("ascii") + b"\r\n\r\n"
    field = subject_field(data)
    assert field.isascii()
    assert not EMPTY_ENCODED_WORD.search(field), field
    lines = (b"Subject: " + field).split(b"\r\n")
    assert all(len(line) <= 78 for line in lines if b" " in line.strip()), lines
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Subject"] == prefix + subject


@pytest.mark.parametrize("prefix", ["", "[TEST] "])
def test_every_length_and_place_of_aeoeaa_folds_without_empty_encoded_words(prefix):
    # The sweep that found them: 8 of 160 lengths of a [TEST] subject had =?utf-8?q??=.
    for length in range(1, 161):
        for letter in "æøåÆØÅ":
            for at in {0, length // 2, length - 1}:
                words = "".join(letter if i == at else ("a" if i % 8 else " ") for i in range(length)).strip()
                if words:
                    assert_subject_ok("Kultur: " + words, prefix, whole_message=False)


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.text(alphabet="abcdefghijklmnoprstuvyæøåÆØÅ.,:–!?=@{}%", min_size=1, max_size=30),
                      min_size=1, max_size=12),
       prefix=st.sampled_from(["", "[TEST] "]))
def test_any_subject_folds_cleanly_and_reads_back(words, prefix):
    assert_subject_ok(" ".join(words), prefix)


@settings(max_examples=200, deadline=None)
@given(name=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
                    max_size=160).map(lambda s: " ".join(s.split())),
       local=st.integers(min_value=1, max_value=64), link=st.integers(min_value=0, max_value=300))
def test_quoted_printable_lines_stay_within_76_for_any_value(name, local, link):
    address = "k" * local + "@example.org"
    url = "https://kultur.example.org/avmeld/" + ("A=b&c" * 60)[:link]
    preferences = "https://kultur.example.org/innstillinger/" + ("ø" * link)
    template = build_template(rendered("Kultur: Ås satser på kulturskolen"), DIGEST, now=NOW)
    person = recipient(name, address, url, preferences)
    message, wire = template.personalise_for_smtp(person)
    body = message.partition(b"\r\n\r\n")[2]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert wire.replace(b"\r\n..", b"\r\n.") == message + (b"" if message.endswith(b"\r\n") else b"\r\n")
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    greeting = f"Hei, {name}!" if name else "Hei!"
    assert text.startswith(greeting + " Nytt om kultur.")
    assert f"fordi {address} abonnerer" in text and url in text and preferences in text


@pytest.mark.parametrize("length", [74, 75, 76, 77, 150])
def test_a_value_of_76_characters_makes_no_77_character_line(length):
    template = build_template(rendered("Kultur: Nytt"), DIGEST, now=NOW)
    person = recipient("N" * length, "a" * (length - 12) + "@example.org",
                       "https://ks.no/" + "u" * (length - 14), "https://ks.no/" + "p" * (length - 14))
    data = template.personalise(person)
    body = data.partition(b"\r\n\r\n")[2]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    text = email.message_from_bytes(data, policy=email.policy.default).get_body(("plain",)).get_content()
    assert f"Hei, {'N' * length}!" in text and person.unsubscribe_url in text
