"""`digest preview --mjml` compiled with the official MJML compiler (npm `mjml`) gives Outlook the same widths as ours.

MRML (mjml-python) and the official compiler must agree on every width Outlook for Windows reads: the tables in the
conditional comments and the `width` of each image. `make test` installs the official compiler in tests/.node/.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import lxml.html
import pytest

from tests.conftest import REPO

OFFICIAL_MJML = REPO / "tests" / ".node" / "node_modules" / ".bin" / "mjml"
OUTLOOK_BLOCK = re.compile(r"<!--\[if mso \| IE\]>(.*?)<!\[endif\]-->", re.DOTALL)
OUTLOOK_TAG = re.compile(r"<(table|td|v:[a-z]+)\b[^>]*>")


def official_html(mjml_file: Path) -> str:
    if not OFFICIAL_MJML.exists():
        pytest.fail(f"{OFFICIAL_MJML} is missing: `make test` installs the official MJML compiler (npm mjml)")
    done = subprocess.run([str(OFFICIAL_MJML), str(mjml_file), "--stdout", "--config.validationLevel=strict"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def outlook_widths(html: str) -> list[tuple[str, str | None, str | None]]:
    """(tag, width attribute, width in its style) of every table and cell inside Outlook's conditional comments."""
    widths = []
    for block in OUTLOOK_BLOCK.findall(html):
        for match in OUTLOOK_TAG.finditer(block):
            tag = match.group(0)
            attribute = re.search(r'\swidth="([^"]*)"', tag)
            style = re.search(r'style="(?:[^"]*;)?\s*width:\s*([^;"]+)', tag)
            widths.append((match.group(1), attribute and attribute.group(1), style and style.group(1).strip()))
    return widths


def image_widths(html: str) -> list[tuple[str | None, str | None]]:
    return [(img.get("src"), img.get("width")) for img in lxml.html.fromstring(html).iter("img")]


@pytest.fixture
def illustrated(project: Path) -> Path:
    """The demo project with a logo and an article that has an image, so that image widths are compared too."""
    path = project / "schedule.yaml"
    logo = "    logo: {url: 'https://www.ks.no/logo.png', alt: KS, width: 120}\n"
    path.write_text(path.read_text(encoding="utf-8").replace("    title: Kultur\n", "    title: Kultur\n" + logo, 1),
                    encoding="utf-8")
    (project / "content" / "2019-06-20-bilde.md").write_text(
        "---\ntitle: Kulturskoledagen\npublished: 2019-06-20T10:00:00+02:00\n"
        "url: https://www.ks.no/kulturskoledagen/\nimage: https://www.ks.no/bilder/fiolin.jpg\n"
        "image_alt: Elever øver på fiolin\n---\nKulturskolene viste fram elevene.\n", encoding="utf-8")
    return project


def test_official_mjml_gives_outlook_the_same_widths(illustrated: Path, run_cli):
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "preview.html", "--mjml", "digest.mjml")
    assert result.exit_code == 0, result.stderr
    assert "digest.mjml" in result.stderr
    ours = (illustrated / "preview.html").read_text(encoding="utf-8")
    theirs = official_html(illustrated / "digest.mjml")

    our_widths, their_widths = outlook_widths(ours), outlook_widths(theirs)
    assert len(our_widths) > 40  # every section, column and divider has its Outlook table
    assert our_widths == their_widths
    # The content is 600 px wide, and a divider or image inside 24 px of padding on each side gets 552 px.
    assert {w for _, attr, style in our_widths for w in (attr, style) if w} == {"600", "600px", "552px"}

    assert image_widths(ours) == image_widths(theirs)
    assert image_widths(ours) == [("https://www.ks.no/logo.png", "120"), ("https://www.ks.no/bilder/fiolin.jpg", "552")]


def test_page_background_is_on_the_body_in_both_compilers(illustrated: Path, run_cli):
    assert run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "preview.html",
                   "--mjml", "digest.mjml").exit_code == 0
    ours = (illustrated / "preview.html").read_text(encoding="utf-8")
    for html in (ours, official_html(illustrated / "digest.mjml")):
        body = lxml.html.fromstring(html).body
        assert "background-color:#eef1f4" in body.get("style", "").replace(" ", "")


def test_no_width_attributes_made_from_css(illustrated: Path, run_cli):
    assert run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "preview.html").exit_code == 0
    html = (illustrated / "preview.html").read_text(encoding="utf-8")
    tree = lxml.html.fromstring(html)
    assert [p for p in tree.iter("p") if p.get("width") is not None] == []
    assert all(re.fullmatch(r"\d+", img.get("width", "")) for img in tree.iter("img"))
    # MJML's reset (border-collapse and Outlook's table spacing) stays in its <style> block, not on every table.
    assert not [t for t in tree.iter("table") if "mso-table-lspace" in t.get("style", "")]
    assert "mso-table-lspace: 0pt" in html
