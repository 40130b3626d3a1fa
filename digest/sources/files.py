"""Articles from a folder of Markdown files with YAML front matter (the `files` source)."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlsplit

import frontmatter
import yaml
from markdown_it import MarkdownIt

from digest.errors import ContentError
from digest.models import Article

_markdown = MarkdownIt("commonmark")
_KNOWN_FIELDS = {"title", "published", "url", "kicker", "image", "image_alt"}


def load_articles(folder: Path, *, label: str) -> list[Article]:
    """All `*.md` files in `folder`, sorted by name. The first bad file stops the load with its name and field."""
    if not folder.is_dir():
        raise ContentError("content folder not found", path=folder)
    return [load_article(path, source=label) for path in sorted(folder.glob("*.md"))]


def load_article(path: Path, *, source: str) -> Article:
    try:
        post = frontmatter.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ContentError("not UTF-8 text", path=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""  # +1 for 1-based, +1 for the '---' line
        raise ContentError(f"invalid front matter{where}: {getattr(err, 'problem', err)}", path=path) from None

    meta = post.metadata
    unknown = sorted(set(meta) - _KNOWN_FIELDS)
    if unknown:
        raise ContentError(f"unknown field (known: {', '.join(sorted(_KNOWN_FIELDS))})", path=path, field=unknown[0])

    image = _optional_url(meta, "image", path)
    image_alt = _optional_line(meta, "image_alt", path)
    if image and not image_alt:
        # Screen readers read the alt text; an image without one is an accessibility bug, so we refuse it early.
        raise ContentError("required when 'image' is given (describe the picture for screen readers)",
                           path=path, field="image_alt")
    teaser = first_paragraph(post.content)
    if not teaser:
        raise ContentError("the article has no text; its first paragraph is the teaser", path=path, field="body")
    return Article(
        url=_required_url(meta, "url", path),
        title=_required_line(meta, "title", path),
        teaser=teaser,
        published=_published(meta, path),
        source=source,
        kicker=_optional_line(meta, "kicker", path),
        image=image,
        image_alt=image_alt,
    )


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
            return re.sub(r"\s+", " ", text).strip()
    return ""


def _required_line(meta: dict, field: str, path: Path) -> str:
    if field not in meta or meta[field] in (None, ""):
        raise ContentError("is missing", path=path, field=field)
    return _line(meta[field], field, path)


def _optional_line(meta: dict, field: str, path: Path) -> str | None:
    value = meta.get(field)
    return None if value in (None, "") else _line(value, field, path)


def _line(value: object, field: str, path: Path) -> str:
    if not isinstance(value, str):
        raise ContentError(f"must be text, not {type(value).__name__}", path=path, field=field)
    if "\r" in value or "\n" in value:
        raise ContentError("must be a single line (no line breaks)", path=path, field=field)
    return value.strip()


def _required_url(meta: dict, field: str, path: Path) -> str:
    value = _required_line(meta, field, path)
    _check_url(value, field, path)
    return value


def _optional_url(meta: dict, field: str, path: Path) -> str | None:
    value = _optional_line(meta, field, path)
    if value is not None:
        _check_url(value, field, path)
    return value


def _check_url(value: str, field: str, path: Path) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ContentError(f"{value!r} is not an absolute http(s) URL", path=path, field=field)


def _published(meta: dict, path: Path) -> datetime:
    value = meta.get("published")
    if value is None:
        raise ContentError("is missing", path=path, field="published")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ContentError(f"{value!r} is not an ISO 8601 date and time", path=path, field="published") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ContentError("needs a time and a UTC offset, e.g. 2019-06-14T09:30:00+02:00",
                           path=path, field="published")
    if not isinstance(value, datetime):
        raise ContentError("must be a date and time", path=path, field="published")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ContentError("needs a UTC offset, e.g. 2019-06-14T09:30:00+02:00", path=path, field="published")
    return value
