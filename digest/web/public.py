"""An edition as anyone may see it at its archive address: nothing that belongs to one subscriber.

The e-mail's footer paragraph that says why *you* get it ("Du får denne e-posten fordi …"), with the unsubscribe,
preferences and "Vis i nettleser" links, is replaced by a public one (sign up, every edition, follow the feed); the
masthead's "Vis i nettleser" (a link to the page itself) goes; the greeting has no name; the page announces the
archive's Atom feed.
"""

from __future__ import annotations

import lxml.html
from lxml.html import builder

from digest.message import fill
from digest.models import RenderedEdition


def _paragraph_of(anchor: lxml.html.HtmlElement) -> lxml.html.HtmlElement:
    """The block around a link: its nearest <p> (or <div>), else the link itself."""
    for ancestor in anchor.iterancestors():
        if ancestor.tag in ("p", "div"):
            return ancestor
    return anchor


def public_html(rendered: RenderedEdition, *, page_url: str, title: str, organisation: str, archive_url: str,
                feed_url: str, subscribe_url: str) -> str:
    """`page_url` is the edition's own archive address: the e-mail's "Vis i nettleser" links go there, so on
    that page they are dropped."""
    placeholders = rendered.placeholders
    personal_links = {placeholders.unsubscribe_url, placeholders.preferences_url}
    document = lxml.html.document_fromstring(rendered.html)
    personal = [anchor for anchor in document.iter("a") if (anchor.get("href") or "").strip() in personal_links]
    blocks: list[lxml.html.HtmlElement] = []
    for anchor in personal:
        block = _paragraph_of(anchor)
        if all(block is not seen for seen in blocks):
            blocks.append(block)
    for index, block in enumerate(blocks):
        if index == 0:
            note = _public_note(block, title=title, organisation=organisation, archive_url=archive_url,
                                feed_url=feed_url, subscribe_url=subscribe_url)
            block.addprevious(note)
        block.drop_tree()
    for anchor in [anchor for anchor in document.iter("a") if (anchor.get("href") or "").strip() == page_url]:
        anchor.drop_tree()
    head = document.find("head")
    if head is not None:
        head.append(builder.LINK(rel="alternate", type="application/atom+xml", title=f"{title}: arkiv",
                                 href=feed_url))
    out = lxml.html.tostring(document, encoding="unicode", doctype="<!doctype html>")
    # Whatever placeholder is left (the greeting, an address in a changed template) gets its neutral value.
    return fill(out, placeholders, {"greeting": "Hei!", "email": "du", "unsubscribe_url": "",
                                    "preferences_url": ""})


def _public_note(block: lxml.html.HtmlElement, *, title: str, organisation: str, archive_url: str, feed_url: str,
                 subscribe_url: str) -> lxml.html.HtmlElement:
    """The public footer line, styled like the paragraph it replaces (the e-mail's styles are inlined)."""
    link_style = next((a.get("style") for a in block.iter("a") if a.get("style")), None)

    def link(href: str, text: str) -> lxml.html.HtmlElement:
        anchor = builder.A(text, href=href)
        if link_style:
            anchor.set("style", link_style)
        return anchor

    note = builder.P(f"Dette er en utgave av {title} fra {organisation}. ",
                     link(subscribe_url, "Meld deg på"), " · ", link(archive_url, "Alle utgavene"), " · ",
                     link(feed_url, "Følg arkivet (Atom)"))
    for attribute in ("class", "style"):
        value = block.get(attribute)
        if value:
            note.set(attribute, value)
    return note
