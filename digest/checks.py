"""Checks on a rendered edition before it goes out: each gives a verdict (ok, warn, fail) and a sentence in bokmål.

Pure functions over the HTML, the text, the message bytes and the sources' last outcomes; the one check that needs
the network (do the links answer?) lives in `digest/linkcheck.py`. The editors' desk shows them all; nothing here
stops a send.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import TYPE_CHECKING, Literal

import lxml.html
import tinycss2
import tinycss2.color3
from babel.dates import format_datetime
from lxml.etree import _Element

from digest.models import Edition, RenderedEdition

if TYPE_CHECKING:
    from digest.store.sources import SourceOutcome

Verdict = Literal["ok", "warn", "fail"]
VERDICT_WORDS: dict[str, str] = {"ok": "OK", "warn": "Advarsel", "fail": "Feil"}

# Gmail shows "[Meldingen er klippet]" and hides the rest (the footer with the unsubscribe link first) when the HTML
# is larger than about 102 KB.
GMAIL_CLIP_BYTES = 102 * 1024
SIZE_WARN_BYTES = 90 * 1024
THIN_ARTICLES = 3
# WCAG 2.x AA, success criterion 1.4.3: 4.5:1 for text, 3:1 for large text (24 px, or 18.66 px bold).
AA_NORMAL = 4.5
AA_LARGE = 3.0


@dataclass(frozen=True, kw_only=True)
class Check:
    key: str
    title: str
    verdict: Verdict
    message: str
    details: tuple[str, ...] = ()

    @property
    def verdict_word(self) -> str:
        return VERDICT_WORDS[self.verdict]


def _kb(size: int) -> str:
    return f"{size / 1024:.0f} KB".replace(".", ",")


def _nb_number(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def _snippet(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _parse(html: str) -> _Element:
    return lxml.html.document_fromstring(html)


# -- size -------------------------------------------------------------------------------------------------------------

def check_size(html: str) -> Check:
    """The HTML as a subscriber gets it (personal values filled in) against Gmail's clipping limit."""
    size = len(html.encode("utf-8"))
    limit = _kb(GMAIL_CLIP_BYTES)
    if size > GMAIL_CLIP_BYTES:
        return Check(key="size", title="Størrelse (Gmail-klipping)", verdict="fail",
                     message=f"HTML-en er {_kb(size)}, over Gmails grense på omtrent {limit}: Gmail klipper "
                             "e-posten, og leserne ser verken resten av artiklene eller avmeldingslenken. "
                             "Ta med færre artikler eller kortere ingresser.")
    if size > SIZE_WARN_BYTES:
        return Check(key="size", title="Størrelse (Gmail-klipping)", verdict="warn",
                     message=f"HTML-en er {_kb(size)}, nær Gmails grense på omtrent {limit}, der e-posten "
                             "blir klippet.")
    return Check(key="size", title="Størrelse (Gmail-klipping)", verdict="ok",
                 message=f"HTML-en er {_kb(size)}, godt under Gmails grense på omtrent {limit}.")


# -- images -----------------------------------------------------------------------------------------------------------

_FILENAME_ALT = re.compile(r"(?i)^(none|null|undefined|image|img|bilde|foto|photo|\S+\.(jpe?g|png|gif|webp|svg))$")


def check_alt_text(html: str) -> Check:
    """Every image needs a text for screen readers (and for clients that block images), unless it is decorative."""
    missing: list[str] = []
    suspicious: list[str] = []
    images = 0
    for image in _parse(html).iter("img"):
        if image.get("role") in {"presentation", "none"} or image.get("aria-hidden") == "true":
            continue
        images += 1
        src = image.get("src") or "(uten adresse)"
        alt = image.get("alt")
        if alt is None or not alt.strip():
            missing.append(src)
        elif _FILENAME_ALT.match(alt.strip()):
            suspicious.append(f"{src}: «{alt.strip()}»")
    title = "Alt-tekst på bilder"
    if missing:
        count = "Ett bilde" if len(missing) == 1 else f"{len(missing)} bilder"
        return Check(key="alt", title=title, verdict="fail",
                     message=f"{count} mangler alt-tekst. Skjermlesere leser da ingenting eller filnavnet, og "
                             "den som har bilder slått av, ser bare et tomt felt. Beskriv bildet.",
                     details=tuple(missing))
    if suspicious:
        return Check(key="alt", title=title, verdict="warn",
                     message="Noen alt-tekster ser ut som filnavn eller plassholdere, ikke som beskrivelser.",
                     details=tuple(suspicious))
    if not images:
        return Check(key="alt", title=title, verdict="ok", message="E-posten har ingen bilder.")
    return Check(key="alt", title=title, verdict="ok",
                 message="Alle bildene har alt-tekst." if images > 1 else "Bildet har alt-tekst.")


# -- headings ---------------------------------------------------------------------------------------------------------

def check_headings(html: str) -> Check:
    """Headings start at h1 and go down one level at a time (h1 → h3 skips one; screen readers navigate by them)."""
    headings = [(int(element.tag[1]), _snippet(element.text_content()))
                for element in _parse(html).iter("h1", "h2", "h3", "h4", "h5", "h6")]
    title = "Rekkefølge på overskrifter"
    if not headings:
        return Check(key="headings", title=title, verdict="warn",
                     message="E-posten har ingen overskrifter; skjermleserbrukere kan ikke hoppe mellom delene.")
    problems: list[str] = []
    if headings[0][0] != 1:
        problems.append(f"Den første overskriften er h{headings[0][0]} («{headings[0][1]}»), ikke h1.")
    for (before, _), (level, text) in itertools.pairwise(headings):
        if level > before + 1:
            problems.append(f"h{before} følges av h{level} («{text}»): nivå h{before + 1} er hoppet over.")
    ones = sum(1 for level, _ in headings if level == 1)
    if problems:
        return Check(key="headings", title=title, verdict="fail", message=problems[0], details=tuple(problems[1:]))
    if ones > 1:
        return Check(key="headings", title=title, verdict="warn",
                     message=f"E-posten har {ones} h1-overskrifter; vanligvis er det én, tittelen.")
    return Check(key="headings", title=title, verdict="ok",
                 message=f"{len(headings)} overskrifter i riktig rekkefølge, fra h1 og nedover uten hopp.")


# -- contrast ---------------------------------------------------------------------------------------------------------

RGB = tuple[float, float, float]
_WHITE: RGB = (1.0, 1.0, 1.0)
_BLACK: RGB = (0.0, 0.0, 0.0)
_SKIPPED_TAGS = {"head", "style", "script", "title", "meta", "link"}


@dataclass(frozen=True)
class _Style:
    color: RGB = _BLACK
    background: RGB = _WHITE
    font_px: float = 16.0
    bold: bool = False


@dataclass(frozen=True)
class ContrastProblem:
    ratio: float
    required: float
    foreground: str
    background: str
    text: str


def _luminance(rgb: RGB) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG 2.x contrast ratio of two opaque colours, from 1 (same) to 21 (black on white)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _hex(rgb: RGB) -> str:
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def _blend(top: tinycss2.color3.RGBA, under: RGB) -> RGB:
    a = top.alpha
    return (top.red * a + under[0] * (1 - a), top.green * a + under[1] * (1 - a), top.blue * a + under[2] * (1 - a))


def _color(tokens: list[object]) -> tinycss2.color3.RGBA | None:
    """The first colour among a declaration's values (`background: url(x) #fff no-repeat` → white)."""
    for token in tokens:
        if getattr(token, "type", None) in {"whitespace", "comment"}:
            continue
        try:
            color = tinycss2.color3.parse_color(token)  # type: ignore[arg-type]
        except (AttributeError, TypeError, ValueError):
            color = None
        if color is not None and color != "currentColor":
            return color  # type: ignore[return-value]
    return None


def _declarations(style: str) -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    for node in tinycss2.parse_declaration_list(style, skip_whitespace=True, skip_comments=True):
        if node.type == "declaration":
            found[node.lower_name] = node.value
    return found


def _font_px(tokens: list[object], inherited: float) -> float:
    for token in tokens:
        kind = getattr(token, "type", None)
        if kind == "dimension":
            unit = token.lower_unit  # type: ignore[attr-defined]
            value = float(token.value)  # type: ignore[attr-defined]
            return {"px": value, "pt": value * 4 / 3, "em": value * inherited, "rem": value * 16.0}.get(unit,
                                                                                                        inherited)
        if kind == "percentage":
            return float(token.value) / 100 * inherited  # type: ignore[attr-defined]
    return inherited


def _is_bold(tokens: list[object], inherited: bool) -> bool:
    for token in tokens:
        kind = getattr(token, "type", None)
        if kind == "ident":
            return {"bold": True, "bolder": True, "normal": False, "lighter": False}.get(
                token.lower_value, inherited)  # type: ignore[attr-defined]
        if kind == "number":
            return float(token.value) >= 600  # type: ignore[attr-defined]
    return inherited


def _hidden(declarations: dict[str, list[object]]) -> bool:
    def ident(name: str) -> str:
        values = [getattr(t, "lower_value", "") for t in declarations.get(name, [])
                  if getattr(t, "type", "") == "ident"]
        return values[0] if values else ""

    opacity = [t for t in declarations.get("opacity", []) if getattr(t, "type", "") == "number"]
    return (ident("display") == "none" or ident("visibility") == "hidden"
            or bool(opacity and float(opacity[0].value) == 0)  # type: ignore[attr-defined]
            or ident("mso-hide") == "all")


def _own_text(element: _Element) -> str:
    parts = [element.text or ""] + [child.tail or "" for child in element]
    return " ".join(part.strip() for part in parts if part.strip())


def _walk(element: _Element, inherited: _Style) -> Iterator[tuple[_Element, _Style, str]]:
    if not isinstance(element.tag, str) or element.tag in _SKIPPED_TAGS:
        return
    declarations = _declarations(element.get("style") or "")
    if _hidden(declarations) or element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return
    style = inherited
    background = element.get("bgcolor")
    if background:
        parsed = tinycss2.color3.parse_color(background)
        if parsed is not None and parsed != "currentColor":
            style = _Style(style.color, _blend(parsed, style.background), style.font_px, style.bold)
    for name in ("background", "background-color"):
        parsed = _color(declarations.get(name, []))
        if parsed is not None:
            style = _Style(style.color, _blend(parsed, inherited.background), style.font_px, style.bold)
    color = _color(declarations.get("color", []))
    if color is None and element.tag == "font" and element.get("color"):
        color = tinycss2.color3.parse_color(element.get("color"))  # type: ignore[assignment]
    if color is not None and color != "currentColor":
        style = _Style(_blend(color, style.background), style.background, style.font_px, style.bold)
    if "font-size" in declarations:
        style = _Style(style.color, style.background, _font_px(declarations["font-size"], style.font_px), style.bold)
    if "font-weight" in declarations or element.tag in {"b", "strong", "h1", "h2", "h3", "h4", "h5", "h6", "th"}:
        bold = _is_bold(declarations["font-weight"], style.bold) if "font-weight" in declarations else True
        style = _Style(style.color, style.background, style.font_px, bold)
    text = _own_text(element)
    if text:
        yield element, style, text
    for child in element:
        yield from _walk(child, style)


def contrast_problems(html: str) -> tuple[list[ContrastProblem], int]:
    """Text whose colour against its background is below WCAG AA, and how many pieces of text were looked at."""
    root = _parse(html)
    body = root.find("body")
    problems: list[ContrastProblem] = []
    checked = 0
    for _element, style, text in _walk(body if body is not None else root, _Style()):
        checked += 1
        large = style.font_px >= 24 or (style.bold and style.font_px >= 18.66)
        required = AA_LARGE if large else AA_NORMAL
        ratio = contrast_ratio(style.color, style.background)
        # WCAG compares the unrounded ratio; a hair below (4.499) still fails.
        if ratio < required:
            problems.append(ContrastProblem(ratio=ratio, required=required, foreground=_hex(style.color),
                                            background=_hex(style.background), text=_snippet(text, 50)))
    return problems, checked


def check_contrast(html: str) -> Check:
    """WCAG AA contrast of each piece of text against its background, read from inline styles and bgcolor.

    An approximation: colours come from `color`, `background(-color)` and `bgcolor` (as inlined), inherited down the
    tree, with transparent colours blended over what is behind. Background images, `<style>` rules that were not
    inlined (dark mode) and text in images are not seen.
    """
    problems, checked = contrast_problems(html)
    title = "Kontrast (WCAG AA)"
    scope = ("Sjekket ut fra innebygde stiler (color, background og bgcolor) i lyst tema; bakgrunnsbilder og "
             "mørk modus er ikke med.")
    if problems:
        worst = min(problems, key=lambda p: p.ratio)
        count = "Én tekst" if len(problems) == 1 else f"{len(problems)} tekster"
        details = tuple(f"{_nb_number(p.ratio, 2)}:1 (krav {_nb_number(p.required)}:1), {p.foreground} på "
                        f"{p.background}: «{p.text}»" for p in sorted(problems, key=lambda p: p.ratio)[:10])
        return Check(key="contrast", title=title, verdict="fail",
                     message=f"{count} har for lav kontrast mot bakgrunnen; lavest er {_nb_number(worst.ratio, 2)}:1 "
                             f"for «{worst.text}» ({worst.foreground} på {worst.background}). WCAG AA krever "
                             f"4,5:1, og 3:1 for stor tekst. {scope}",
                     details=details)
    return Check(key="contrast", title=title, verdict="ok",
                 message=f"All tekst ({checked} tekstbiter) har minst 4,5:1 kontrast mot bakgrunnen (3:1 for stor "
                         f"tekst). {scope}")


# -- unsubscribe ------------------------------------------------------------------------------------------------------

def check_unsubscribe(rendered: RenderedEdition, message: bytes) -> Check:
    """The footer link (HTML and text, still as placeholders) and the List-Unsubscribe headers of a built message."""
    title = "Avmelding"
    problems: list[str] = []
    placeholder = rendered.placeholders.unsubscribe_url
    links = [a for a in _parse(rendered.html).iter("a") if (a.get("href") or "").strip() == placeholder]
    if not links:
        problems.append("HTML-delen har ingen avmeldingslenke.")
    elif not any(a.text_content().strip() for a in links):
        problems.append("Avmeldingslenken i HTML-delen har ingen tekst.")
    if placeholder not in rendered.text:
        problems.append("Tekstdelen har ingen avmeldingslenke.")
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    header = str(parsed.get("List-Unsubscribe", ""))
    urls = re.findall(r"<([^>]+)>", header)
    web = [url for url in urls if url.startswith(("https://", "http://"))]
    if not header:
        problems.append("Meldingen mangler List-Unsubscribe-hodet.")
    else:
        if not web:
            problems.append("List-Unsubscribe har ingen nettadresse.")
        if not any(url.startswith("mailto:") for url in urls):
            problems.append("List-Unsubscribe har ingen mailto-adresse.")
    if str(parsed.get("List-Unsubscribe-Post", "")).strip() != "List-Unsubscribe=One-Click":
        problems.append("Meldingen mangler List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058).")
    if problems:
        return Check(key="unsubscribe", title=title, verdict="fail", message=problems[0],
                     details=tuple(problems[1:]))
    if not any(url.startswith("https://") for url in web):
        return Check(key="unsubscribe", title=title, verdict="warn",
                     message="Lenke og List-Unsubscribe-hoder finnes, men avmeldingsadressen bruker http, ikke "
                             "https: Gmail og Yahoo krever https for ett-klikks avmelding (sett base_url).")
    return Check(key="unsubscribe", title=title, verdict="ok",
                 message="Avmeldingslenke i HTML- og tekstdelen, List-Unsubscribe med https og mailto, og "
                         "ett-klikks avmelding (RFC 8058).")


# -- thin or empty ----------------------------------------------------------------------------------------------------

def check_articles(edition: Edition, *, min_articles: int, skip_reason: str | None = None) -> Check:
    """An empty edition is not sent; one below `min_articles` is skipped; a very short one may not be worth it."""
    count = len(edition.articles)
    title = "Innhold"
    if count == 0:
        return Check(key="articles", title=title, verdict="fail",
                     message="Utgaven er tom: ingen nye artikler siden forrige utgave, så den blir ikke sendt.")
    if skip_reason is not None or count < min_articles:
        return Check(key="articles", title=title, verdict="fail",
                     message=f"Bare {count} ny{'' if count == 1 else 'e'} {'artikkel' if count == 1 else 'artikler'}, "
                             f"men minst {min_articles} kreves (min_articles): utgaven blir hoppet over.")
    without_teaser = [article.title for article in edition.articles if not article.teaser.strip()]
    if count < THIN_ARTICLES:
        return Check(key="articles", title=title, verdict="warn",
                     message=f"Tynn utgave: bare {count} {'artikkel' if count == 1 else 'artikler'}. Er det verdt en "
                             "e-post, eller kan den vente til neste gang?")
    if without_teaser:
        return Check(key="articles", title=title, verdict="warn",
                     message=f"{len(without_teaser)} av {count} artikler har ingen ingress.",
                     details=tuple(without_teaser))
    return Check(key="articles", title=title, verdict="ok", message=f"{count} artikler, alle med ingress.")


# -- sources ----------------------------------------------------------------------------------------------------------

def check_sources(outcomes: Sequence[SourceOutcome], *, tz: tzinfo, locale: str = "nb_NO") -> Check:
    """How each source went the last time it was collected (the same stored outcome `digest status` and
    `digest collect` report). A source that failed is left out of the edition; if all failed, nothing goes out."""
    title = "Kilder"
    if not outcomes:
        return Check(key="sources", title=title, verdict="warn",
                     message="Kildene er ikke hentet ennå, så vi vet ikke om de svarer.")
    when = format_datetime(max(o.fetched_at for o in outcomes), "d. MMMM y 'kl.' HH:mm", tzinfo=tz, locale=locale)
    # A content folder with a broken file gives a report per bad file: still one source.
    sources: dict[tuple[str, str], list[SourceOutcome]] = {}
    for outcome in outcomes:
        sources.setdefault((outcome.kind, outcome.name), []).append(outcome)
    failed = [o for o in outcomes if not o.ok]
    failing = sum(1 for reports in sources.values() if any(not o.ok for o in reports))
    total = len(sources)
    details = tuple(f"{_where(o)}: {o.error}" for o in failed)
    if not failed:
        articles = sum(o.articles for o in outcomes)
        subject = "Kilden ble" if total == 1 else f"Alle {total} kildene ble"
        return Check(key="sources", title=title, verdict="ok",
                     message=f"{subject} hentet uten feil sist ({when}), med {articles} "
                             f"{'artikkel' if articles == 1 else 'artikler'} i alt.")
    if failing == total:
        subject = "Kilden" if total == 1 else f"Alle {total} kildene"
        return Check(key="sources", title=title, verdict="fail",
                     message=f"{subject} feilet sist {'den' if total == 1 else 'de'} ble hentet ({when}), så "
                             f"utgaven kan ikke lages: {details[0]}", details=details[1:])
    return Check(key="sources", title=title, verdict="warn",
                 message=f"{failing} av {total} kilder feilet sist de ble hentet ({when}), og artiklene "
                         f"{'dens' if failing == 1 else 'deres'} er ikke med: {details[0]}", details=details[1:])


def _where(outcome: SourceOutcome) -> str:
    return outcome.name if outcome.name == outcome.location else f"{outcome.name} ({outcome.location})"


# -- links (collected here, probed in digest/linkcheck.py) --------------------------------------------------------

@dataclass(frozen=True)
class Links:
    """The http(s) addresses an e-mail points to: links and images, each once, in order of appearance."""

    links: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    skipped: tuple[str, ...] = field(default=())

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.links + self.images))


def links_in(html: str, *, own_prefix: str | None = None) -> Links:
    """Every http(s) link and image source; placeholders, mailto:, tel: and our own app's pages are left out
    (the archive page of an edition exists only once the edition is sent)."""
    links: dict[str, None] = {}
    images: dict[str, None] = {}
    skipped: dict[str, None] = {}
    root = _parse(html)
    for element, attribute, target in (("a", "href", links), ("img", "src", images)):
        for node in root.iter(element):
            url = (node.get(attribute) or "").strip()
            if not url.startswith(("http://", "https://")) or "@@" in url:
                continue
            if own_prefix and url.startswith(own_prefix.rstrip("/") + "/"):
                skipped[url] = None
                continue
            target[url] = None
    return Links(tuple(links), tuple(images), tuple(skipped))

