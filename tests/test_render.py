"""The rendered e-mail: golden files, and the properties clients and screen readers depend on."""

from __future__ import annotations

import difflib
import itertools
import os
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import lxml.html
import pytest

from digest.config import load_settings
from digest.errors import RenderError
from digest.models import Article
from digest.render import compile_mjml, render
from digest.select import select_explained
from digest.sources import collect

GOLDEN = Path(__file__).parent / "golden"
OSLO = ZoneInfo("Europe/Oslo")


def kultur_edition(project: Path, articles: list[Article] | None = None):
    settings = load_settings(project / "schedule.yaml")
    digest = settings.digest("kultur")
    edition = select_explained(
        articles if articles is not None else collect(settings, digest),
        digest="kultur", day=date(2019, 7, 1), until=datetime(2019, 7, 1, 23, 59, tzinfo=OSLO),
        previous_until=None, max_articles=digest.max_articles, first_window_days=digest.first_window_days,
    ).edition
    return render(settings, digest, edition)


def assert_golden(name: str, actual: str) -> None:
    """Compare with tests/golden/NAME; UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True),
                                            f"golden/{name}", "rendered", n=2))
        pytest.fail(f"rendered {name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{diff[:6000]}")


def scrub(text: str) -> str:
    # Nothing in a rendered edition should vary between runs but the base URL and the random part of the
    # per-recipient placeholders (@@email.<nonce>@@), which the golden files write as @@email@@.
    text = re.sub(r"@@([a-z_]+)\.[0-9a-f]{32}@@", r"@@\1@@", text)
    return re.sub(r"https?://127\.0\.0\.1:\d+", "http://BASE", text)


def test_html_matches_golden(project):
    # One tag per line, so that a change shows as a readable diff.
    html = re.sub(r">(?=<)", ">\n", kultur_edition(project).html)
    assert_golden("kultur-2019-07-01.html", scrub(html))


def test_text_matches_golden(project):
    assert_golden("kultur-2019-07-01.txt", scrub(kultur_edition(project).text))


def test_html_keeps_what_clients_need(project):
    html = kultur_edition(project).html
    assert html.startswith("<!doctype html>")
    assert re.search(r"<html[^>]*\blang=\"nb\"", html)
    assert "@media" in html and "prefers-color-scheme: dark" in html
    assert "!important" in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "<mj-" not in html
    assert "fonts.googleapis" not in html and "@import" not in html
    assert len(html.encode()) < 90 * 1024


def test_headings_in_order_and_titles_are_links(project):
    tree = lxml.html.fromstring(kultur_edition(project).html)
    levels = [int(h.tag[1]) for h in tree.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    assert levels[0] == 1
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
    titles = [h.text_content().strip() for h in tree.iter("h2")]
    assert "Ås satser på kulturskolen" in titles
    links = {a.get("href") for h in tree.iter("h2") for a in h.iter("a")}
    assert "https://www.ks.no/fagomrader/statistikk-og-analyse/kommunespeilet/as-satser-pa-kulturskolen/" in links


def test_every_image_has_alt_text(project):
    (project / "content" / "2019-06-20-bilde.md").write_text(
        "---\ntitle: Kulturskoledagen\npublished: 2019-06-20T10:00:00+02:00\n"
        "url: https://www.ks.no/kulturskoledagen/\nimage: https://www.ks.no/bilder/fiolin.jpg\n"
        "image_alt: Elever øver på fiolin\n---\nKulturskolene viste fram elevene.\n", encoding="utf-8")
    tree = lxml.html.fromstring(kultur_edition(project).html)
    images = list(tree.iter("img"))
    assert images, "the article image is missing"
    assert all(img.get("alt") is not None for img in images)
    assert any(img.get("alt") == "Elever øver på fiolin" for img in images)


def test_markup_in_a_title_is_text_not_html(project):
    evil = Article(url="https://www.ks.no/x/", title='<script>alert("x")</script> & <b>fet</b>',
                   teaser="<img src=x onerror=alert(1)>", published=datetime(2019, 6, 30, 12, tzinfo=OSLO),
                   source="test")
    rendered = kultur_edition(project, [evil])
    assert "<script>" not in rendered.html and "<img src=x" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert '<script>alert("x")</script>' in rendered.text  # plain text is plain: shown as written


def test_unknown_mjml_tag_fails_loudly():
    with pytest.raises(RenderError, match="mj-colum"):
        compile_mjml("<mjml><mj-body><mj-section><mj-colum><mj-text>x</mj-text></mj-colum>"
                     "</mj-section></mj-body></mjml>")


def test_edition_date_and_article_dates_are_norwegian(project):
    rendered = kultur_edition(project)
    assert "1. juli 2019" in rendered.html
    assert "5. desember 2018" in rendered.text


def test_preheader_is_hidden_everywhere_and_ends_the_inbox_snippet(project):
    rendered = kultur_edition(project)
    tree = lxml.html.fromstring(rendered.html)
    hidden = tree.find_class("preheader")[0]
    style = hidden.get("style").replace(" ", "")
    assert "display:none" in style and "mso-hide:all" in style
    assert "color" not in style  # white-on-white costs points at SpamAssassin (HTML_FONT_LOW_CONTRAST)
    text = hidden.text_content()
    assert text.startswith(rendered.preheader)
    # After it only invisible filler (combining grapheme joiner, zero-width non-joiner, no-break space), enough to
    # fill an inbox line, so the snippet does not run on into "Vis i nettleser Kultur …".
    filler = text[len(rendered.preheader):]
    assert len(filler) >= 200 and set(filler) == {"\u034f", "\u200c", "\xa0"}
    body_text = tree.body.text_content()
    assert body_text.index(rendered.preheader) < body_text.index("Vis i nettleser")


def test_a_site_folder_overrides_only_the_templates_it_holds(project):
    (project / "mal" / "partials").mkdir(parents=True)
    (project / "mal" / "partials" / "footer.mjml.j2").write_text(
        '<mj-section css-class="card footer"><mj-column><mj-text css-class="txt">'
        "<p>Egen bunntekst for {{ contact.organisation }}: @@unsubscribe_url@@</p>"
        "</mj-text></mj-column></mj-section>\n", encoding="utf-8")
    path = project / "schedule.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "templates: mal\n", encoding="utf-8")
    rendered = kultur_edition(project)
    assert "Egen bunntekst for KS" in rendered.html
    assert "KONTAKT" not in rendered.html  # the built-in footer is replaced …
    assert "Ås satser på kulturskolen" in rendered.html  # … and the rest still comes from ours
    assert "KONTAKT" in rendered.text  # no site text part: ours


def test_a_missing_site_folder_is_a_config_error(project, run_cli):
    path = project / "schedule.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "templates: finnes-ikke\n", encoding="utf-8")
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1
    assert "templates: templates folder" in result.stderr and "finnes-ikke does not exist" in result.stderr
    assert "Traceback" not in result.stderr
