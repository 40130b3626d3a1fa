"""Content files: a missing or wrong field is one clear error naming the file and the field."""

from __future__ import annotations

import pytest

from digest.errors import ContentError
from digest.sources.files import load_article

GOOD = {
    "title": "Ås satser på kulturskolen",
    "published": "2018-12-05T11:00:00+01:00",
    "url": "https://www.ks.no/as/",
}


def write(tmp_path, fields: dict[str, str], body: str = "Første avsnitt.\n\nAndre avsnitt.\n"):
    path = tmp_path / "artikkel.md"
    front = "".join(f"{key}: {value}\n" for key, value in fields.items())
    path.write_text(f"---\n{front}---\n{body}", encoding="utf-8")
    return path


def test_a_good_file_becomes_an_article(tmp_path):
    article = load_article(write(tmp_path, {**GOOD, "kicker": "KOMMUNESPEILET"}), source="content/")
    assert article.title == "Ås satser på kulturskolen"
    assert article.kicker == "KOMMUNESPEILET"
    assert article.teaser == "Første avsnitt."
    assert article.published.utcoffset() is not None


def test_teaser_is_first_paragraph_as_plain_text(tmp_path):
    body = "Et *viktig* avsnitt med [lenke](https://x.no)\nover to linjer.\n\nResten.\n"
    assert load_article(write(tmp_path, GOOD, body), source="c").teaser == \
        "Et viktig avsnitt med lenke over to linjer."


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({k: v for k, v in GOOD.items() if k != "title"}, "title", "is missing"),
    ({k: v for k, v in GOOD.items() if k != "published"}, "published", "is missing"),
    ({**GOOD, "published": "2018-12-05T11:00:00"}, "published", "UTC offset"),
    ({**GOOD, "published": "2018-12-05"}, "published", "needs a time"),
    ({**GOOD, "published": "i går"}, "published", "not an ISO 8601"),
    ({**GOOD, "url": "/relativ/lenke"}, "url", "absolute"),
    ({**GOOD, "title": '"Linje\\r\\nBcc: x@y.no"'}, "title", "single line"),
    ({**GOOD, "image": "https://www.ks.no/a.jpg"}, "image_alt", "required"),
    ({**GOOD, "forfatter": "Kari"}, "forfatter", "unknown field"),
])
def test_bad_field_names_file_and_field(tmp_path, fields, field, message):
    path = write(tmp_path, fields)
    with pytest.raises(ContentError) as caught:
        load_article(path, source="content/")
    text = str(caught.value)
    assert str(path) in text and f"'{field}'" in text and message in text


def test_empty_body_is_an_error(tmp_path):
    with pytest.raises(ContentError, match="first paragraph is the teaser"):
        load_article(write(tmp_path, GOOD, body="\n"), source="c")


BAD_FILES = {
    # name: (text, line, field, message)
    "zz-uten-dato.md": ("---\ntitle: Uten dato\nurl: https://www.ks.no/x/\n---\nTekst.\n",
                        1, "published", "is missing"),
    "zz-umulig-dato.md": ("---\ntitle: Umulig dato\nurl: https://www.ks.no/y/\n"
                          "published: 2019-13-45T99:00:00+02:00\n---\nTekst.\n",
                          4, "published", "is not an ISO 8601 date and time"),
    "zz-uten-lenke.md": ("---\ntitle: Uten lenke\npublished: 2019-06-20T10:00:00+02:00\n---\nTekst.\n",
                         1, "url", "is missing"),
    "zz-dobbel.md": ("---\ntitle: En\nurl: https://www.ks.no/z/\ntitle: To\n"
                     "published: 2019-06-20T10:00:00+02:00\n---\nTekst.\n",
                     4, None, "duplicate key 'title' (first written on line 2)"),
}


def write_bad_files(project):
    for name, (text, *_rest) in BAD_FILES.items():
        (project / "content" / name).write_text(text, encoding="utf-8")


def test_every_bad_content_file_is_a_warning_and_the_edition_goes_out(project, run_cli):
    write_bad_files(project)
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "p.html")
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(BAD_FILES)  # all of them at once, one line each
    for name, (_text, line, field, message) in BAD_FILES.items():
        found = [w for w in warnings if f"content/{name}:{line})" in w]
        assert len(found) == 1, (name, warnings)
        assert message in found[0] and (field is None or f"field '{field}'" in found[0])
    html = (project / "p.html").read_text(encoding="utf-8")
    assert "Drammen, Larvik eller Sarpsborg" in html  # the good articles made the edition
    assert "Uten dato" not in html and "Umulig dato" not in html


def test_strict_content_refuses_the_edition_naming_every_bad_file(project, run_cli):
    schedule = project / "schedule.yaml"
    text = schedule.read_text(encoding="utf-8")
    strict = text.replace("    max_articles: 10\n", "    max_articles: 10\n    content: {strict: true}\n", 1)
    schedule.write_text(strict, encoding="utf-8")
    write_bad_files(project)
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "p.html")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1 and error[0].startswith(f"error: {len(BAD_FILES)} content files have problems: ")
    for name, (_text, line, _field, message) in BAD_FILES.items():
        assert f"{name}:{line}: " in error[0] and message in error[0]
    assert not (project / "p.html").exists()


def test_a_byte_order_mark_before_the_front_matter_is_accepted(tmp_path):
    path = write(tmp_path, GOOD)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_article(path, source="c").url == "https://www.ks.no/as/"


def test_the_error_gives_the_line_of_the_field(tmp_path):
    path = write(tmp_path, {**GOOD, "url": "/relativ/lenke"})  # title 2, published 3, url 4
    with pytest.raises(ContentError) as caught:
        load_article(path, source="c")
    assert str(caught.value).startswith(f"{path}:4: field 'url': ")


def test_an_escaped_tag_in_the_teaser_is_not_text(tmp_path):
    body = "Før &amp;lt;img src=x onerror=alert(6)&amp;gt; etter.\n"
    assert load_article(write(tmp_path, GOOD, body), source="c").teaser == "Før etter."
