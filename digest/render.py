"""Edition → RenderedEdition: Jinja2 → MJML → MRML → premailer, and the plain-text part. Once per edition."""

from __future__ import annotations

import logging
import re
import textwrap
from datetime import date, datetime
from pathlib import Path

import jinja2
from babel.dates import format_date
from mjml import mjml2html
from premailer import Premailer

from digest.config import DigestConfig, Settings
from digest.errors import ConfigError, RenderError
from digest.models import Edition, Placeholders, RenderedEdition

# The e-mail templates live in templates/ at the top of the project; a wheel ships a copy inside the package (see
# setup.py), which wins when it is there, so that a plain `pip install .` renders without the source tree.
_SHIPPED_TEMPLATES = Path(__file__).resolve().parent / "email_templates"
TEMPLATES = (_SHIPPED_TEMPLATES if _SHIPPED_TEMPLATES.is_dir()
             else Path(__file__).resolve().parent.parent / "templates")

# System fonts only: remote fonts cost a request per open, leak the reader to a third party and are blocked anyway.
# Unquoted: a family name of plain words needs no quotes, and quotes inside style attributes trip up juice (the
# official MJML compiler's inliner) on buttons.
FONT_STACK = "-apple-system, BlinkMacSystemFont, Segoe UI, Roboto, Helvetica, Arial, sans-serif"


def nb_date(value: date | datetime, locale: str = "nb_NO") -> str:
    """`25. november 2026` — the Norwegian long date."""
    return format_date(value, format="long", locale=locale)


def _tel_url(phone: str) -> str:
    digits = re.sub(r"[^\d+]", "", phone)
    if len(digits) == 8 and not digits.startswith("+"):
        digits = "+47" + digits  # a Norwegian number written without its country code
    return f"tel:{digits}"


def _display_url(url: object) -> str:
    return re.sub(r"^https?://", "", str(url)).rstrip("/")


def _wrap(text: str, width: int = 72) -> str:
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def template_folders(settings: Settings | None = None) -> list[Path]:
    """Where templates are looked up, in order: the site's own folder (`templates:` in schedule.yaml), then ours.

    A site folder may hold only the files it changes (say partials/footer.mjml.j2); the rest come from ours.
    """
    if settings is None or settings.templates is None:
        return [TEMPLATES]
    folder = settings.resolve(settings.templates)
    if not folder.is_dir():
        raise ConfigError(f"templates folder {folder} does not exist", key="templates")
    return [folder, TEMPLATES]


def template_environment(folder: Path | list[Path] = TEMPLATES) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        # Everything but the plain-text part is markup: escape by default so no title can inject HTML.
        autoescape=lambda name: name is not None and not name.endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(nb_date=nb_date, tel_url=_tel_url, display_url=_display_url, wrap=_wrap)
    return env


def subject_line(edition: Edition, digest: DigestConfig) -> str:
    first_title = edition.articles[0].title if edition.articles else ""
    try:
        return digest.subject.format(title=digest.title, date=nb_date(edition.date), first_title=first_title)
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"bad placeholder {err} (use {{title}}, {{date}}, {{first_title}})",
                          key=f"digests.{edition.digest}.subject") from None


def preheader(edition: Edition, limit: int = 140) -> str:
    """The grey line after the subject in the inbox: what else is inside."""
    others = [article.title for article in edition.articles[1:]]
    text = ("Også: " + " · ".join(others)) if others else (edition.articles[0].teaser if edition.articles else "")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" ·,") + " …"


def view_url(settings: Settings, edition: Edition) -> str:
    """The public archive page of this edition (the 'view in browser' link)."""
    return f"{settings.public_url}/arkiv/{edition.digest}/{edition.key}"


def feed_url(settings: Settings, digest: str) -> str:
    """The digest's archive as an Atom feed (linked from every e-mail's footer and the archive pages)."""
    return f"{settings.public_url}/arkiv/{digest}.atom"


def introduction_paragraphs(text: str) -> list[str]:
    """The editors' introduction as paragraphs (a blank line between them), each a plain text."""
    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def template_context(settings: Settings, digest: DigestConfig, edition: Edition,
                     placeholders: Placeholders | None = None) -> dict[str, object]:
    """What the templates see. `personal` holds the markers of this render's per-recipient values (digest/message.py
    fills them); a template writes {{ personal.greeting }}, never a marker of its own."""
    return {
        "personal": placeholders or Placeholders.fresh(),
        # A stored draft froze its subject and preheader; editions from before drafts work them out here.
        "subject": edition.subject or subject_line(edition, digest),
        "preheader": edition.preheader or preheader(edition),
        "introduction": introduction_paragraphs(edition.introduction),
        "title": digest.title,
        "intro": digest.description or "Her er de siste artiklene.",
        "edition_date": nb_date(edition.date, digest.locale),
        "articles": edition.articles,
        "more_url": str(digest.more_url),
        "contact": digest.contact,
        "view_url": view_url(settings, edition),
        "feed_url": feed_url(settings, edition.digest),
        "font_stack": FONT_STACK,
        "logo": digest.logo,
        # Only a label someone configured is shown: a path (content/) or a host name means nothing to a reader.
        "labels": {source.label for source in digest.sources if source.label},
    }


def render_mjml(env: jinja2.Environment, context: dict[str, object]) -> str:
    return env.get_template("digest.mjml.j2").render(context)


def mjml_source(settings: Settings, digest: DigestConfig, edition: Edition,
                env: jinja2.Environment | None = None) -> str:
    """The edition's MJML, before any compiler: for template work and for checking against the official tools."""
    return render_mjml(env or template_environment(template_folders(settings)),
                       template_context(settings, digest, edition))


# `<mj-style inline="inline">`: the rules the official compiler inlines (with juice). MRML writes every mj-style as a
# plain <style> block, so we note which blocks were meant for inlining and let premailer inline only those.
_INLINE_STYLE = re.compile(r'<mj-style\s+inline="inline"\s*>(.*?)</mj-style>', re.DOTALL)
_STYLE_BLOCK = re.compile(r"<style\b([^>]*)>(.*?)</style>", re.DOTALL)
_COMMENT = re.compile(r"(<!--.*?-->)", re.DOTALL)
_IGNORE = ' data-premailer="ignore"'


def compile_mjml(source: str) -> str:
    """MJML → HTML with MRML. Style blocks not meant for inlining are marked so premailer leaves them as written."""
    try:
        # fonts={} keeps MRML from adding its default Google Fonts links.
        html = mjml2html(source, fonts={})
    except Exception as err:  # MRML raises its own error types; all mean "the template is broken"
        raise RenderError(f"MJML could not be compiled: {err}") from err
    leftover = re.search(r"<mj-[a-z-]+", html)
    if leftover:
        # MRML passes tags it does not know straight through; a mistyped tag would reach subscribers.
        raise RenderError(f"MJML left {leftover.group(0)}> in the HTML: unknown or misplaced MJML tag")
    inline = {css.strip() for css in _INLINE_STYLE.findall(source)}

    def mark(block: re.Match[str]) -> str:
        if block.group(2).strip() in inline:
            return block.group(0)
        return f"<style{block.group(1)}{_IGNORE}>{block.group(2)}</style>"

    # Only blocks outside comments: premailer never sees what is inside Outlook's conditional comments anyway.
    return "".join(part if part.startswith("<!--") else _STYLE_BLOCK.sub(mark, part)
                   for part in _COMMENT.split(html))


def inline_css(html: str) -> str:
    """Inline our `inline="inline"` styles; leave MJML's own markup (resets, Outlook tables, @media) as written."""
    inliner = Premailer(
        html,
        allow_network=False,
        base_url=None,
        disable_link_rewrites=True,
        remove_classes=False,  # the dark-mode rules select on classes
        strip_important=False,
        keep_style_tags=False,
        disable_leftover_css=False,  # leftover = pseudo-classes and @media of the inlined rules, kept in <style>
        disable_validation=True,  # keep properties cssutils does not know (mso-*, color-scheme)
        cssutils_logging_level=logging.CRITICAL,
        exclude_pseudoclasses=True,
        # No HTML attributes made from CSS: MJML already wrote the ones Outlook needs (width="552" on an image,
        # bgcolor on a section), and premailer would overwrite them (width="100%") or add new ones (width on <p>).
        disable_basic_attributes=["width", "height", "align", "valign", "bgcolor"],
        align_floating_images=False,  # nothing floats; no align attributes on images
    )
    inlined = inliner.transform(pretty_print=False)
    # premailer drops the marker on the blocks it skipped, but not on those it skips for their media attribute.
    inlined = inlined.replace(_IGNORE, "")
    # lxml drops or rewrites the doctype; without it clients fall into quirks mode.
    inlined = re.sub(r"^\s*<!DOCTYPE[^>]*>\s*", "", inlined, flags=re.IGNORECASE)
    return "<!doctype html>\n" + inlined


def render_text(env: jinja2.Environment, context: dict[str, object]) -> str:
    text = env.get_template("digest.txt.j2").render(context)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render(settings: Settings, digest: DigestConfig, edition: Edition,
           env: jinja2.Environment | None = None) -> RenderedEdition:
    if not edition.articles:
        raise RenderError(f"edition {edition.digest} {edition.key} has no articles to render")
    env = env or template_environment(template_folders(settings))
    context = template_context(settings, digest, edition)
    html = inline_css(compile_mjml(render_mjml(env, context)))
    return RenderedEdition(
        edition=edition,
        subject=str(context["subject"]),
        preheader=str(context["preheader"]),
        html=html,
        text=render_text(env, context),
        placeholders=context["personal"],  # type: ignore[arg-type]
    )
