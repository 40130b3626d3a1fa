"""Normalising what the web sends: canonical URLs, plain text, teasers, dates."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from digest.sources.normalise import canonical_url, parse_date, plain_text, shorten

OSLO = ZoneInfo("Europe/Oslo")


@pytest.mark.parametrize(("url", "base", "expected"), [
    ("/kultur/a/?utm_source=rss&id=3&UTM_Medium=x#top", "HTTP://WWW.KS.NO:80/rss.xml", "http://www.ks.no/kultur/a/?id=3"),
    ("bibliotek.html", "https://kommune.no/feeds/kultur.rss", "https://kommune.no/feeds/bibliotek.html"),
    ("https://kommune.no", None, "https://kommune.no/"),
    ("https://kommune.no:8443/x?fbclid=abc", None, "https://kommune.no:8443/x"),
    ("https://www.ås.kommune.no/kultur/søndag åpent/", None, "https://www.xn--s-1fa.kommune.no/kultur/s%C3%B8ndag%20%C3%A5pent/"),
    ("https://kommune.no/kultur/s%C3%B8ndag/", None, "https://kommune.no/kultur/s%C3%B8ndag/"),
    ("mailto:post@kommune.no", None, None),
    ("javascript:void(0)", None, None),
    ("", "https://kommune.no/", None),
])
def test_canonical_url(url, base, expected):
    assert canonical_url(url, base) == expected


@pytest.mark.parametrize(("markup", "expected"), [
    ("<b>Ås</b> &amp; kultur", "Ås & kultur"),
    ("<p>Første.</p><p>Andre&nbsp;avsnitt.</p>", "Første. Andre avsnitt."),
    ("Hei<script>alert('x')</script> <style>p{}</style>verden", "Hei verden"),
    ("&lt;i&gt;Dobbelt&lt;/i&gt; escapet", "Dobbelt escapet"),
    ("3 < 4 og 5 > 4", "3 < 4 og 5 > 4"),
    ("  linje\n\n  to\t tre  ", "linje to tre"),
    (None, ""),
])
def test_plain_text(markup, expected):
    assert plain_text(markup) == expected


def test_shorten_cuts_on_a_word_boundary():
    text = "Kulturskolen " * 40
    short = shorten(text.strip(), 300)
    assert short.endswith("Kulturskolen…") and len(short) <= 301
    assert shorten("Kort tekst.") == "Kort tekst."


@pytest.mark.parametrize(("value", "expected"), [
    ("Fri, 14 Jun 2019 09:30:00 +0200", datetime(2019, 6, 14, 9, 30, tzinfo=OSLO)),
    ("Fri, 14 Jun 2019 09:30:00", datetime(2019, 6, 14, 9, 30, tzinfo=OSLO)),  # no zone: Oslo
    ("2019-06-25T10:00:00", datetime(2019, 6, 25, 10, 0, tzinfo=OSLO)),
    ("2019-06-20T12:00:00Z", datetime(2019, 6, 20, 14, 0, tzinfo=OSLO)),
    ("14. juni 2019", datetime(2019, 6, 14, 0, 0, tzinfo=OSLO)),
    ("Publisert 14.06.2019 kl. 09.30", datetime(2019, 6, 14, 9, 30, tzinfo=OSLO)),
    ("Les mer", None),
    ("", None),
])
def test_parse_date(value, expected):
    parsed = parse_date(value, OSLO)
    assert parsed == expected
    assert parsed is None or parsed.utcoffset() is not None
