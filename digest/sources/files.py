"""Articles from a folder of Markdown files with YAML front matter (the `files` source).

Every bad file is reported (file, line, field), all of them at once; the good files still make articles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import frontmatter
import yaml
from markdown_it import MarkdownIt

from digest import yamlfile
from digest.errors import ContentError, ContentProblems
from digest.models import Article
from digest.sources.normalise import plain_text, representable

_markdown = MarkdownIt("commonmark")
_KNOWN_FIELDS = {"title", "published", "url", "kicker", "image", "image_alt"}


def load_articles(folder: Path, *, label: str) -> list[Article]:
    """All `*.md` files in `folder`, sorted by name; any bad file raises one ContentError naming every bad one."""
    articles, problems = read_articles(folder, label=label)
    if problems:
        raise ContentProblems(problems)
    return articles


def read_articles(folder: Path, *, label: str) -> tuple[list[Article], list[ContentError]]:
    """The good articles of `folder` and a problem (file, line, field) for each bad file: all of them at once."""
    if not folder.is_dir():
        raise ContentError("content folder not found", path=folder)
    articles: list[Article] = []
    problems: list[ContentError] = []
    for path in sorted(folder.glob("*.md")):
        try:
            articles.append(load_article(path, source=label))
        except ContentError as err:
            problems.append(err)
    return articles, problems


def load_article(path: Path, *, source: str) -> Article:
    try:
        # utf-8-sig: a byte order mark (some Windows editors write one) is not part of the front matter.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ContentError("not UTF-8 text", path=path, line=1) from None
    except OSError as err:
        raise ContentError(f"cannot read the file: {err.strerror or err}", path=path) from None
    meta, body, lines = _front_matter(text, path)
    fields = _Fields(meta, path, lines)

    unknown = sorted(set(meta) - _KNOWN_FIELDS, key=str)
    if unknown:
        raise fields.error(str(unknown[0]), f"unknown field (known: {', '.join(sorted(_KNOWN_FIELDS))})")

    image = fields.optional_url("image")
    image_alt = fields.optional_line("image_alt")
    if image and not image_alt:
        # Screen readers read the alt text; an image without one is an accessibility bug, so we refuse it early.
        raise fields.error("image_alt", "required when 'image' is given (describe the picture for screen readers)")
    teaser = first_paragraph(body)
    if not teaser:
        raise ContentError("the article has no text; its first paragraph is the teaser", path=path,
                           field="body", line=lines.body)
    return Article(
        url=fields.required_url("url"),
        title=fields.required_line("title"),
        teaser=teaser,
        published=fields.published(),
        source=source,
        kicker=fields.optional_line("kicker"),
        image=image,
        image_alt=image_alt,
    )


@dataclass(frozen=True)
class _Lines:
    """Where things are in the file (1-based): the opening `---`, each front-matter key, the body."""

    start: int
    keys: dict[str, int]
    body: int


def _front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, _Lines]:
    handler = frontmatter.YAMLHandler()
    stripped = text.lstrip()
    start = text[: len(text) - len(stripped)].count("\n") + 1  # the line of the opening '---'
    if not handler.detect(stripped):
        raise ContentError("no front matter: the file must start with a '---' line, the fields, and '---'",
                           path=path, line=start)
    try:
        fm, body = handler.split(stripped)
    except ValueError:
        raise ContentError("the front matter has no closing '---' line", path=path, line=start) from None
    # The line of the file on which the YAML text begins (it starts right after the opening '---').
    first = start + stripped[: stripped.find(fm, 3)].count("\n")
    try:
        meta = yamlfile.load(fm, line_offset=first - 1)
        node = yamlfile.compose(fm)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = first + mark.line if mark is not None else start
        raise ContentError(f"invalid front matter: {getattr(err, 'problem', None) or err}", path=path,
                           line=line) from None
    except RecursionError:
        raise ContentError("invalid front matter: nested too deeply", path=path, line=start) from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ContentError("the front matter must be fields (name: value), one a line", path=path, line=first)
    keys: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            keys[str(key_node.value)] = first + key_node.start_mark.line
    body_line = first + fm.count("\n") + 1
    return meta, body, _Lines(start=start, keys=keys, body=body_line)


def first_paragraph(markdown: str) -> str:
    """The first paragraph of a Markdown body as plain text (inline markup dropped, whitespace collapsed)."""
    tokens = _markdown.parse(markdown)
    for i, token in enumerate(tokens):
        if token.type == "paragraph_open" and i + 1 < len(tokens):
            inline = tokens[i + 1]
            text = "".join(
                " " if child.type in {"softbreak", "hardbreak"} else child.content
                for child in inline.children or []
                if child.type in {"text", "code_inline", "softbreak", "hardbreak"}
            )
            # Through the same cleaning as web teasers: an escaped tag (&lt;img …&gt;) is no text for a reader.
            return plain_text(text)
    return ""


@dataclass(frozen=True)
class _Fields:
    """The front matter's values, each read with a check whose error names the file, the line and the field."""

    meta: dict[str, Any]
    path: Path
    lines: _Lines

    def error(self, field: str, message: str) -> ContentError:
        # A missing field has no line of its own: the opening '---' is where it belongs.
        return ContentError(message, path=self.path, field=field, line=self.lines.keys.get(field, self.lines.start))

    def required_line(self, field: str) -> str:
        if field not in self.meta or self.meta[field] in (None, ""):
            raise self.error(field, "is missing")
        return self._line(self.meta[field], field)

    def optional_line(self, field: str) -> str | None:
        value = self.meta.get(field)
        return None if value in (None, "") else self._line(value, field)

    def _line(self, value: object, field: str) -> str:
        if not isinstance(value, str):
            raise self.error(field, f"must be text, not {type(value).__name__}")
        if "\r" in value or "\n" in value:
            raise self.error(field, "must be a single line (no line breaks)")
        return value.strip()

    def required_url(self, field: str) -> str:
        value = self.required_line(field)
        self._check_url(value, field)
        return value

    def optional_url(self, field: str) -> str | None:
        value = self.optional_line(field)
        if value is not None:
            self._check_url(value, field)
        return value

    def _check_url(self, value: str, field: str) -> None:
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
            raise self.error(field, f"{value!r} is not an absolute http(s) URL")

    def published(self) -> datetime:
        value = self.meta.get("published")
        if value is None:
            raise self.error("published", "is missing")
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise self.error("published", f"{value!r} is not an ISO 8601 date and time") from None
        if isinstance(value, date) and not isinstance(value, datetime):
            raise self.error("published", "needs a time and a UTC offset, e.g. 2019-06-14T09:30:00+02:00")
        if not isinstance(value, datetime):
            raise self.error("published", "must be a date and time")
        if value.tzinfo is None or value.utcoffset() is None:
            raise self.error("published", "needs a UTC offset, e.g. 2019-06-14T09:30:00+02:00")
        if representable(value, UTC) is None:
            raise self.error("published", f"{value.isoformat()} is out of the range of dates we can handle")
        return value
