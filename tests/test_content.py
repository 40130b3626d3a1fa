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


def test_cli_reports_a_bad_content_file_in_one_line(project, run_cli):
    (project / "content" / "zz-feil.md").write_text("---\ntitle: Uten dato\nurl: https://www.ks.no/x/\n---\nTekst.\n",
                                                    encoding="utf-8")
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "p.html")
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert "zz-feil.md: field 'published': is missing" in result.stderr
    assert not (project / "p.html").exists()
