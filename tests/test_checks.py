"""The desk's checks on rendered e-mails: crafted HTML for each rule, the real edition, links over a real server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from digest.app.editions import prepare
from digest.checks import (
    GMAIL_CLIP_BYTES,
    check_alt_text,
    check_articles,
    check_contrast,
    check_headings,
    check_size,
    check_unsubscribe,
    contrast_ratio,
    links_in,
)
from digest.config import load_settings
from digest.linkcheck import check_links, probe_all
from digest.message import build_template, recipient_for
from digest.models import Article, Edition
from digest.render import render
from digest.store import Store
from tests.conftest import REPO
from tests.httpserver import HTTPFixtureServer, Route


def _page(body: str) -> str:
    return f'<!doctype html><html lang="nb"><head><title>t</title></head><body>{body}</body></html>'


@pytest.fixture(scope="module")
def real():
    """The Kultur edition of 1 July 2019 as rendered, and a message built from it."""
    settings = load_settings(REPO / "schedule.yaml", environ={})
    store = Store.open("sqlite://")
    edition = prepare(settings, store, "kultur", as_of=date(2019, 7, 1), now=datetime(2019, 7, 1, tzinfo=UTC)).edition
    digest = settings.digest("kultur")
    rendered = render(settings, digest, edition)
    template = build_template(rendered, digest, now=datetime(2019, 7, 1, tzinfo=UTC))
    recipient = recipient_for(settings, "kultur", digest, template, b"secret", subscriber_id=None,
                              email="a@example.org", name="")
    return rendered, template.personalise(recipient)


def test_the_real_edition_passes_every_offline_check(real):
    rendered, message = real
    assert check_size(rendered.html).verdict == "ok"
    assert check_alt_text(rendered.html).verdict == "ok"
    assert check_headings(rendered.html).verdict == "ok"
    contrast = check_contrast(rendered.html)
    assert contrast.verdict == "ok", contrast.details
    # http base_url in schedule.yaml: everything is there, but one-click unsubscribe wants https.
    unsubscribe = check_unsubscribe(rendered, message)
    assert unsubscribe.verdict == "warn" and "https" in unsubscribe.message


def test_size_against_gmails_clipping_limit():
    assert check_size("x" * 50_000).verdict == "ok"
    assert check_size("x" * (95 * 1024)).verdict == "warn"
    over = check_size("x" * (GMAIL_CLIP_BYTES + 1))
    assert over.verdict == "fail"
    assert "over Gmails grense på omtrent 102 KB" in over.message
    assert check_size("ø" * (GMAIL_CLIP_BYTES // 2 + 1)).verdict == "fail"  # bytes, not characters


def test_images_without_alt_text_fail_and_decorative_ones_pass():
    missing = check_alt_text(_page('<img src="https://x.no/a.jpg"><img src="https://x.no/b.jpg" alt=" ">'))
    assert missing.verdict == "fail"
    assert missing.message.startswith("2 bilder mangler alt-tekst")
    assert missing.details == ("https://x.no/a.jpg", "https://x.no/b.jpg")
    assert check_alt_text(_page('<img src="s.gif" alt="" role="presentation">')).verdict == "ok"
    assert check_alt_text(_page('<img src="k.jpg" alt="Barn øver på fiolin">')).verdict == "ok"
    assert check_alt_text(_page('<img src="k.jpg" alt="IMG_2041.jpg">')).verdict == "warn"


@pytest.mark.parametrize(("body", "verdict", "words"), [
    ("<h1>A</h1><h2>B</h2><h3>C</h3><h2>D</h2>", "ok", "4 overskrifter i riktig rekkefølge"),
    ("<h1>A</h1><h3>C</h3>", "fail", "h1 følges av h3 («C»): nivå h2 er hoppet over"),
    ("<h2>B</h2><h3>C</h3>", "fail", "Den første overskriften er h2"),
    ("<h1>A</h1><h1>B</h1>", "warn", "2 h1-overskrifter"),
    ("<p>Ingen</p>", "warn", "ingen overskrifter"),
])
def test_heading_order(body, verdict, words):
    check = check_headings(_page(body))
    assert check.verdict == verdict
    assert words in check.message


def test_contrast_ratio_matches_wcag_examples():
    assert contrast_ratio((0, 0, 0), (1, 1, 1)) == pytest.approx(21)
    assert contrast_ratio((1, 1, 1), (1, 1, 1)) == pytest.approx(1)
    grey = (0x76 / 255,) * 3  # #767676 on white: the lightest grey that passes AA
    assert contrast_ratio(grey, (1, 1, 1)) == pytest.approx(4.54, abs=0.01)


def test_low_contrast_text_fails_with_the_colours_named():
    check = check_contrast(_page('<div style="background-color:#ffffff"><p style="color:#999999">Lys grå tekst</p>'
                                 '<p style="color:#1f2933">Mørk tekst</p></div>'))
    assert check.verdict == "fail"
    assert "lavest er 2,85:1 for «Lys grå tekst» (#999999 på #ffffff)" in check.message
    assert len(check.details) == 1


def test_contrast_follows_backgrounds_inheritance_large_text_and_transparency():
    # White text on the masthead colour (a bgcolor attribute on a table), inherited into a cell: fine.
    assert check_contrast(_page('<table bgcolor="#003b5c"><tr><td style="color:#fff">Kultur</td></tr></table>'
                                )).verdict == "ok"
    # #888 on white is 3.5:1: too little for body text, enough for large (24 px) or bold 19 px text.
    assert check_contrast(_page('<p style="color:#888">liten</p>')).verdict == "fail"
    assert check_contrast(_page('<p style="color:#888;font-size:24px">stor</p>')).verdict == "ok"
    assert check_contrast(_page('<h2 style="color:#888;font-size:19px">fet og stor nok</h2>')).verdict == "ok"
    # Half-transparent black over white is mid grey (~#808080): fails for small text.
    assert check_contrast(_page('<p style="color:rgba(0,0,0,0.5)">halvgjennomsiktig</p>')).verdict == "fail"
    # The shorthand `background` with an image and a colour: the colour counts.
    assert check_contrast(_page('<div style="background:url(x.png) #000 no-repeat"><p style="color:#222">'
                                "mørk på svart</p></div>")).verdict == "fail"
    # Hidden text (the preheader) is not read by anyone and not judged.
    assert check_contrast(_page('<div style="display:none;color:#fff">skjult</div>')).verdict == "ok"


def test_missing_unsubscribe_link_or_headers_fail(real):
    rendered, message = real
    marker = rendered.placeholders.unsubscribe_url
    without_link = replace(rendered, html=rendered.html.replace(f'href="{marker}"', 'href="https://example.org/"'))
    check = check_unsubscribe(without_link, message)
    assert check.verdict == "fail" and check.message == "HTML-delen har ingen avmeldingslenke."
    headerless = message.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b"")
    check = check_unsubscribe(rendered, headerless)
    assert check.verdict == "fail" and "RFC 8058" in check.message
    check = check_unsubscribe(replace(rendered, text=rendered.text.replace(marker, "")), message)
    assert check.verdict == "fail" and check.message == "Tekstdelen har ingen avmeldingslenke."


def _edition(count: int, teaser: str = "Noe skjer.") -> Edition:
    now = datetime(2019, 7, 1, tzinfo=UTC)
    articles = tuple(Article(url=f"https://x.no/{n}", title=f"Sak {n}", teaser=teaser, published=now, source="t")
                     for n in range(count))
    return Edition(digest="kultur", key="2019-07-01", date=now.date(), since=now, until=now, articles=articles)


def test_empty_thin_and_skipped_editions():
    assert check_articles(_edition(0), min_articles=1).verdict == "fail"
    skipped = check_articles(_edition(2), min_articles=3)
    assert skipped.verdict == "fail" and "utgaven blir hoppet over" in skipped.message
    thin = check_articles(_edition(1), min_articles=1)
    assert thin.verdict == "warn" and thin.message.startswith("Tynn utgave: bare 1 artikkel.")
    assert check_articles(_edition(4, teaser=""), min_articles=1).verdict == "warn"
    assert check_articles(_edition(4), min_articles=1).verdict == "ok"


def test_links_in_leaves_out_placeholders_mail_phone_and_our_own_pages():
    links = links_in(_page('<a href="https://a.no/x">a</a><a href="@@unsubscribe_url@@">u</a>'
                           '<a href="mailto:p@a.no">m</a><a href="tel:+4724132600">t</a>'
                           '<a href="https://a.no/x">again</a><a href="http://127.0.0.1:8000/arkiv/k/1">v</a>'
                           '<img src="https://a.no/b.png" alt="b">'), own_prefix="http://127.0.0.1:8000")
    assert links.all == ("https://a.no/x", "https://a.no/b.png")
    assert links.skipped == ("http://127.0.0.1:8000/arkiv/k/1",)


def test_link_check_asks_every_address_at_once_and_names_the_broken_ones():
    with HTTPFixtureServer({
        "/ok": Route(body=b"ok", content_type="text/html"),
        "/borte": Route(status=404),
        "/treg": Route(hang=True),
        "/flyttet": Route(status=301, headers={"Location": "/ok"}),
        "/robotfri": Route(status=403),
    }) as site:
        links = links_in(_page("".join(f'<a href="{site.url(p)}">x</a>' for p in
                                       ("/ok", "/borte", "/treg", "/flyttet", "/robotfri"))))
        check = check_links(links, agent="kulturdigest-test", timeout=0.5)
        assert check.verdict == "fail"
        assert check.message.startswith("2 adresser svarer ikke eller svarer med feil.")
        assert check.details == (f"{site.url('/borte')}: svarte 404",
                                 f"{site.url('/treg')}: svarte ikke innen 0,5 sekunder",
                                 f"{site.url('/robotfri')}: svarte 403")
        assert site.hits("/ok")[0].headers["User-Agent"] == "kulturdigest-test"

        refused_only = check_links(links_in(_page(f'<a href="{site.url("/robotfri")}">x</a>')), agent="t")
        assert refused_only.verdict == "warn"
        assert check_links(links_in(_page(f'<a href="{site.url("/flyttet")}">x</a>')), agent="t").verdict == "ok"


def test_probe_all_keeps_the_order_of_the_urls():
    import asyncio

    with HTTPFixtureServer({"/a": Route(body=b"a", delay=0.2), "/b": Route(body=b"b")}) as site:
        results = asyncio.run(probe_all([site.url("/a"), site.url("/b"), site.url("/c")], agent="t", timeout=2))
    assert [(r.url.rsplit("/", 1)[1], r.status) for r in results] == [("a", 200), ("b", 200), ("c", 404)]
