"""What a reader sees: the source label on each card, the logo in the masthead, dividers that suit dark mode, the
signature separator; and the e-mail in headless Chromium at 600 and 375 px, light and dark.

Set SCREENS_DIR to keep the screenshots (e.g. SCREENS_DIR=/work/notes/screens) for a look by eye.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import lxml.html
import pytest
from playwright.sync_api import Browser

from tests.httpserver import HTTPFixtureServer, Route


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain one-colour PNG: enough of a logo for a browser to lay out and paint."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
def site() -> Iterator[HTTPFixtureServer]:
    server = HTTPFixtureServer().start()
    server.routes["/logo.png"] = Route(body=png(240, 80, (255, 255, 255)), content_type="image/png")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def branded(project: Path, site: HTTPFixtureServer) -> Path:
    """The demo digest with a labelled source and a logo (served by a local web server)."""
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    text = text.replace("        path: content/\n", "        path: content/\n        label: KS\n", 1)
    text = text.replace("    title: Kultur\n", f"    title: Kultur\n    logo: {{url: '{site.base}/logo.png', "
                        "alt: 'KS – Kommunesektorens organisasjon', width: 120}\n", 1)
    path.write_text(text, encoding="utf-8")
    return project


def preview(project: Path, run_cli) -> tuple[str, str]:
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "preview.html")
    assert result.exit_code == 0, result.stderr
    return ((project / "preview.html").read_text(encoding="utf-8"),
            (project / "preview.txt").read_text(encoding="utf-8"))


def test_source_label_on_every_card_in_both_parts(branded: Path, run_cli):
    html, text = preview(branded, run_cli)
    metas = lxml.html.fromstring(html).find_class("meta")
    assert len(metas) == 6
    assert all(meta.text_content().endswith(" · KS") for meta in metas)
    assert len(re.findall(r"^\d+\. \w+ \d{4} · KS$", text, re.MULTILINE)) == 6


def test_no_label_configured_shows_no_path(project: Path, run_cli):
    html, text = preview(project, run_cli)
    assert "content/" not in html and "content/" not in text


def test_logo_in_the_masthead_with_alt_text_and_pixel_width(branded: Path, site: HTTPFixtureServer, run_cli):
    html, _ = preview(branded, run_cli)
    tree = lxml.html.fromstring(html)
    logo = tree.xpath("//img")[0]
    assert logo.get("src") == f"{site.base}/logo.png"
    assert logo.get("alt") == "KS – Kommunesektorens organisasjon"
    assert logo.get("width") == "120"
    # Above the digest's name.
    assert html.index(f"{site.base}/logo.png") < html.index("<h1")


def test_bad_logo_is_a_config_error(project: Path, run_cli):
    path = project / "schedule.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "    title: Kultur\n", "    title: Kultur\n    logo: {url: logo.png, alt: KS}\n", 1), encoding="utf-8")
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1
    assert "digests.kultur.logo.url" in result.stderr and "Traceback" not in result.stderr


def test_signature_separator_is_dash_dash_space(project: Path, run_cli):
    _, text = preview(project, run_cli)
    assert "\n-- \nDu får denne e-posten fordi" in text


VIEWS = [(600, "light"), (600, "dark"), (375, "light"), (375, "dark")]


def luminance(css_colour: str) -> float:
    r, g, b = (int(part) / 255 for part in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize(("width", "scheme"), VIEWS)
def test_in_the_browser(branded: Path, run_cli, browser: Browser, width: int, scheme: str):
    preview(branded, run_cli)
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme, locale="nb-NO")
    try:
        page = context.new_page()
        page.goto((branded / "preview.html").as_uri())
        page.wait_for_load_state("load")
        # Nothing wider than the screen: no sideways scrolling on a phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        logo = page.locator("img").first
        assert page.evaluate("(img) => img.complete && img.naturalWidth", logo.element_handle()) == 240
        assert logo.bounding_box()["width"] == 120
        body = page.evaluate("getComputedStyle(document.querySelector('.page')).backgroundColor")
        card = page.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor")
        divider = page.evaluate("getComputedStyle(document.querySelector('.divider p')).borderTopColor")
        title = page.evaluate("getComputedStyle(document.querySelector('.txt h2 a')).color")
        if scheme == "light":
            assert body == "rgb(238, 241, 244)" and card == "rgb(255, 255, 255)"
            assert luminance(title) < 0.2
        else:
            assert body == "rgb(16, 20, 24)" and card == "rgb(27, 33, 40)"
            assert luminance(divider) < 0.35  # a quiet line on the dark card, not a bright white one
            assert luminance(title) > 0.5
        assert page.locator(".preheader").is_hidden()
        if os.environ.get("SCREENS_DIR"):
            folder = Path(os.environ["SCREENS_DIR"])
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"kultur-{width}-{scheme}.png"), full_page=True)
    finally:
        context.close()
