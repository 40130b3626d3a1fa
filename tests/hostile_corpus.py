"""A corpus of hostile feeds and pages, and a raw HTTP server on 127.0.0.1 that serves them.

Each case is one web source that misbehaves in its own way: dates at both ends of time, quadratic nesting, wrong
charsets, huge and slow bodies, redirect loops, scripts and `javascript:` links, control characters, broken HTTP.
The server writes raw bytes, so a case can also break the protocol itself (a body shorter than its
Content-Length, bad chunking, no HTTP at all). Used by tests/test_hostile_sources.py and bench/hostile.py.
"""

from __future__ import annotations

import gzip
import html
import random
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

# What the test may expect of a case: it gives articles, it fails with a warning, or either (both are fine, a
# crash or a stall is not).
OK = "ok"
FAIL = "fail"
EITHER = "either"

Writer = Callable[[BinaryIO, threading.Event], None]

PAGE_SELECTORS = {"item": "article", "title": "h2", "link": "h2 a", "teaser": "p", "date": "time"}


@dataclass(frozen=True)
class Case:
    name: str
    write: Writer
    expect: str = EITHER
    kind: str = "feed"  # feed | page
    # Things that must never reach an article from this case (e.g. the contents of /etc/passwd).
    never: tuple[str, ...] = ()
    # Its own timeout (else the one sources_yaml is given): short for the cases that must run out of time.
    timeout: float | None = None


# -- building blocks ---------------------------------------------------------------------------------------------

def answer(body: bytes, *, status: str = "200 OK", content_type: str = "application/rss+xml; charset=utf-8",
           headers: dict[str, str] | None = None) -> Writer:
    def write(out: BinaryIO, _stop: threading.Event) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                 "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
        out.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    return write


def raw(data: bytes) -> Writer:
    def write(out: BinaryIO, _stop: threading.Event) -> None:
        out.write(data)

    return write


def rss(items: str, *, encoding: str = "utf-8", prolog: str = "", namespaces: str = "") -> bytes:
    text = (f'<?xml version="1.0" encoding="{encoding}"?>{prolog}<rss version="2.0" '
            f'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            f'xmlns:content="http://purl.org/rss/1.0/modules/content/" {namespaces}>'
            f"<channel><title>Fiendtlig</title><link>http://example.org/</link>{items}</channel></rss>")
    return text.encode(encoding, "xmlcharrefreplace") if encoding.lower() not in ("utf-16",) else text.encode(encoding)


def item(title: str = "Sak", link: str = "http://example.org/sak", *, description: str = "Tekst.",
         extra: str = "") -> str:
    return f"<item><title>{title}</title><link>{link}</link><description>{description}</description>{extra}</item>"


def dated(value: str, tag: str = "dc:date", number: int = 1) -> bytes:
    return rss(item(f"Datert sak {number}", f"http://example.org/datert-{number}", extra=f"<{tag}>{value}</{tag}>")
               + item("Vanlig sak", "http://example.org/vanlig",
                      extra="<pubDate>Fri, 28 Jun 2019 09:30:00 +0200</pubDate>"))


def atom(entry: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
            f'<id>urn:x</id><updated>2019-06-28T10:00:00Z</updated>{entry}</feed>').encode()


def page(articles: str, *, head: str = "", charset: str = "utf-8") -> bytes:
    return (f"<!doctype html><html><head>{head}<title>Side</title></head><body>{articles}</body></html>"
            ).encode(charset, "xmlcharrefreplace")


def article(title: str = "Sak", href: str = "/sak", *, teaser: str = "Tekst.", when: str = "") -> str:
    time_tag = f'<time datetime="{when}">{when}</time>' if when else ""
    return f'<article><h2><a href="{href}">{title}</a></h2><p>{teaser}</p>{time_tag}</article>'


def trickle(body: bytes, *, every: float, chunk: int = 1) -> Writer:
    """Headers at once, then the body a byte at a time: a server that answers, just never finishes in time."""

    def write(out: BinaryIO, stop: threading.Event) -> None:
        out.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {len(body)}\r\n\r\n"
                  .encode())
        out.flush()
        for start in range(0, len(body), chunk):
            if stop.wait(every):
                return
            out.write(body[start:start + chunk])
            out.flush()

    return write


def hang(out: BinaryIO, stop: threading.Event) -> None:
    stop.wait(60)


def slow_headers(out: BinaryIO, stop: threading.Event) -> None:
    for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n":
        if stop.wait(0.5):
            return
        out.write(bytes([byte]))
        out.flush()


def redirect(location: str, status: str = "302 Found") -> Writer:
    return answer(b"", status=status, headers={"Location": location}, content_type="text/plain")


def gzip_bomb(size: int) -> Writer:
    packed = gzip.compress(b"<" * size, compresslevel=9)
    return answer(packed, headers={"Content-Encoding": "gzip"})


def nested(depth: int, tag: str = "div") -> str:
    return f"<{tag}>" * depth + "dypt" + f"</{tag}>" * depth


def escaped(text: str, times: int) -> str:
    for _ in range(times):
        text = html.escape(text, quote=False)
    return text


# -- the cases ---------------------------------------------------------------------------------------------------

def _cases() -> list[Case]:
    rng = random.Random(14)
    good_item = item("Vanlig sak", "http://example.org/vanlig",
                     extra="<pubDate>Fri, 28 Jun 2019 09:30:00 +0200</pubDate>")
    cases = [
        # Dates at both ends of time: the item loses its date (dated when first seen), never the feed or the run.
        Case("date-9999-minus-14", answer(dated("9999-12-31T23:59:59-14:00")), OK),
        Case("date-0001-plus-14", answer(dated("0001-01-01T00:00:00+14:00")), OK),
        Case("date-zeros", answer(dated("0000-00-00T00:00:00Z")), OK),
        Case("date-rfc822-9999", answer(dated("Fri, 31 Dec 9999 23:59:59 -1400", tag="pubDate")), OK),
        Case("date-year-99999", answer(dated("Fri, 31 Dec 99999 23:59:59 +0000", tag="pubDate")), OK),
        Case("date-atom-9999", answer(atom('<entry><title>A</title><link href="http://example.org/a"/><id>a</id>'
                                           "<updated>9999-12-31T23:59:59-14:00</updated></entry>")), OK),
        Case("date-atom-0001", answer(atom('<entry><title>B</title><link href="http://example.org/b"/><id>b</id>'
                                           "<published>0001-01-01T00:00:00+14:00</published></entry>")), OK),
        Case("date-words", answer(dated("i forgårs ved midnatt, kanskje")), OK),
        Case("date-empty", answer(dated("", tag="pubDate")), OK),
        Case("date-huge-offset", answer(dated("2019-06-28T10:00:00+99:99")), OK),
        Case("date-epoch", answer(dated("1970-01-01T00:00:00Z")), OK),
        Case("page-date-9999", answer(page(article("Sak", when="9999-12-31T23:59:59-14:00")),
                                      content_type="text/html"), OK, kind="page"),
        Case("page-date-0001", answer(page(article("Sak", when="0001-01-01T00:00:00+14:00")),
                                      content_type="text/html"), OK, kind="page"),
        Case("page-date-zeros", answer(page(article("Sak", when="0000-00-00")), content_type="text/html"), OK,
             kind="page"),
        # Nesting and size: quadratic for an HTML sanitiser if nothing caps it.
        Case("nested-escaped-divs", answer(rss(item("Dyp", description=html.escape(nested(19_000))))), OK),
        Case("nested-cdata-divs", answer(rss(item("Dyp", extra=f"<content:encoded><![CDATA[{nested(60_000)}]]>"
                                                               "</content:encoded>"))), OK),
        Case("nested-tables", answer(rss(item("Bord", description=html.escape(nested(16_000, "table"))))), OK),
        Case("nested-xml", answer(rss(nested(20_000, "x") + good_item)), EITHER),
        Case("page-nested-divs", answer(page(nested(30_000) + article("Sak")), content_type="text/html"), EITHER,
             kind="page"),
        # Hogs: seconds of CPU each, so with a 2 s timeout they run out of time, and are killed, alone.
        Case("many-items", answer(rss("".join(item(f"Sak {n}", f"http://example.org/{n}") for n in range(5_000)))),
             FAIL, timeout=2),
        Case("long-title", answer(rss(item("T" * 1_000_000))), EITHER),
        Case("long-teaser", answer(rss(item("Lang", description="ord " * 250_000))), EITHER),
        Case("long-link", answer(rss(item("Lenke", "http://example.org/" + "a" * 100_000))), EITHER),
        Case("many-enclosures", answer(rss(item("Bilder", extra='<enclosure url="http://example.org/b.jpg" '
                                                           'type="image/jpeg" length="1"/>' * 20_000))), FAIL,
             timeout=2),
        Case("over-max-bytes", answer(rss(item("Stor", description="x" * 3_000_000))), FAIL),
        Case("declared-huge", raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 99999999999\r\n\r\n"
                                  b"<rss"), FAIL),
        Case("gzip-bomb", gzip_bomb(50_000_000), FAIL),
        # Entities: expansion bombs and external entities do nothing.
        Case("billion-laughs", answer(rss(item("&lol9;"), prolog='<!DOCTYPE rss [<!ENTITY lol "lol">'
              + "".join(f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n > 1 else "&lol;" * 10}">'
                        for n in range(1, 10)) + "]>")), FAIL, timeout=2),
        Case("xxe-passwd", answer(rss(item("&xxe;", description="&xxe;"),
                                      prolog='<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')), EITHER,
             never=("root:",)),
        Case("xxe-parameter", answer(rss(item("Sak"), prolog='<!DOCTYPE rss [<!ENTITY % p SYSTEM '
                                                             '"http://127.0.0.1:9/evil.dtd"> %p;]>')), EITHER),
        # Markup where text belongs.
        Case("escaped-four-times", answer(rss(item("Bilde", description=escaped(
            "<img src=x onerror=alert(6)>Trygg tekst", 4)))), OK),
        Case("script-in-title", answer(rss(item(html.escape("<script>alert(1)</script>Tittel")))), OK),
        Case("script-in-teaser", answer(rss(item("Skript", description=html.escape(
            "<script>document.location='http://evil.example/'</script><p>Tekst</p>")))), OK),
        Case("style-in-teaser", answer(rss(item("Stil", description=html.escape(
            "<style>body{display:none}</style>Synlig")))), OK),
        Case("javascript-link", answer(rss(item("JS", "javascript:alert(1)"))), FAIL),
        Case("javascript-link-mixed", answer(rss(item("JS", "javascript:alert(1)") + good_item)), OK),
        Case("data-link", answer(rss(item("Data", "data:text/html,<script>alert(1)</script>"))), FAIL),
        Case("javascript-image", answer(rss(item("Bilde", extra='<enclosure url="javascript:alert(1)" '
                                                             'type="image/png" length="1"/>'))), OK),
        Case("vbscript-link", answer(rss(item("VB", "vbscript:msgbox(1)") + good_item)), OK),
        Case("placeholders-in-title", answer(rss(item("@@h_email@@ {{ unsubscribe_url }} {first_title} %(x)s"))),
             OK),
        Case("page-javascript-links", answer(page(article("JS", "javascript:alert(1)") * 3),
                                             content_type="text/html"), FAIL, kind="page"),
        Case("page-script-title", answer(page(article("<script>alert(1)</script>Tittel")),
                                         content_type="text/html"), OK, kind="page"),
        Case("page-base-javascript", answer(page(article("Sak", "sak"), head='<base href="javascript:alert(1)//">'),
                                            content_type="text/html"), OK, kind="page"),
        # Control characters and odd Unicode.
        Case("control-chars-raw", answer(rss(item("Kon\x01tr\x08oll\x1b", description="Te\x00kst\x7f"))), EITHER),
        Case("control-chars-refs", answer(rss(item("Kon&#1;troll&#27;", description="&#0;Tekst"))), EITHER),
        Case("crlf-in-title", answer(rss(item("Linje\r\nBcc: evil@example.org"))), OK),
        Case("bidi-and-separators", answer(rss(item("\u202egnirts\u2028Ny linje\u2029"))), OK),
        Case("nul-body", answer(b"\x00" * 10_000), FAIL),
        # Charsets.
        Case("latin1-declared-utf8", answer(rss(item("Blåbærsyltetøy"), encoding="utf-8")
                                            .replace("å".encode(), b"\xe5")), EITHER),
        Case("utf8-declared-latin1", answer(rss(item("Blåbær")).replace(b'encoding="utf-8"',
                                                                        b'encoding="iso-8859-1"'),
                                            content_type="application/rss+xml; charset=iso-8859-1"), OK),
        Case("unknown-charset", answer(rss(item("Sak")), content_type="application/rss+xml; charset=x-klingon"),
             EITHER),
        Case("utf16", answer(rss(item("Blåbær"), encoding="utf-16"), content_type="application/rss+xml"), EITHER),
        Case("utf7-label", answer(rss(item("+ADw-script+AD4-alert(1)+ADw-/script+AD4-")).replace(
            b'encoding="utf-8"', b'encoding="utf-7"'), content_type="application/rss+xml; charset=utf-7"), EITHER),
        Case("page-windows-1252", answer(page(article("Blåbær"), charset="windows-1252"),
                                         content_type="text/html; charset=windows-1252"), OK, kind="page"),
        Case("page-bogus-meta-charset", answer(page(article("Sak"), head='<meta charset="bogus-42">'),
                                               content_type="text/html"), OK, kind="page"),
        # HTTP that goes wrong.
        Case("hangs", hang, FAIL, timeout=3),
        Case("slow-headers", slow_headers, FAIL, timeout=3),
        Case("trickle-body", trickle(rss(item("Treg")), every=0.2), FAIL, timeout=3),
        Case("redirect-loop", redirect("/hostile/redirect-loop"), FAIL),
        Case("redirect-ftp", redirect("ftp://example.org/feed.rss"), FAIL),
        Case("redirect-javascript", redirect("javascript:alert(1)"), FAIL),
        Case("not-found", answer(b"<h1>404</h1>", status="404 Not Found", content_type="text/html"), FAIL),
        Case("server-error", answer(b"oops", status="500 Internal Server Error", content_type="text/plain"), FAIL),
        Case("retry-after-forever", answer(b"", status="429 Too Many Requests", headers={"Retry-After": "99999"}),
             FAIL),
        Case("empty-body", answer(b""), FAIL),
        Case("html-as-feed", answer(page(article("Sak")), content_type="text/html"), FAIL),
        Case("binary-garbage", answer(rng.randbytes(200_000), content_type="application/octet-stream"), FAIL),
        Case("truncated-xml", answer(rss(good_item * 3)[:-40]), EITHER),
        Case("image-content-type", answer(rss(good_item), content_type="image/png"), OK),
        Case("short-body", raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5000\r\n\r\n<rss>"),
             FAIL),
        Case("bad-chunking", raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"zz\r\n<rss>\r\n0\r\n\r\n"), FAIL),
        Case("not-http", raw(b"SSH-2.0-OpenSSH_9.2\r\n" + b"\xff" * 100), FAIL),
        Case("header-injection", raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nX-A: b\rSet-Cookie: x\r\n"
                                     b"Content-Length: 5\r\n\r\n<rss>"), FAIL),
        Case("page-selectors-match-nothing", answer(page("<div>ingen artikler</div>"), content_type="text/html"),
             FAIL, kind="page"),
        Case("page-blocks-without-titles", answer(page("<article><p>bare tekst</p></article>" * 10_000),
                                                  content_type="text/html"), FAIL, kind="page"),
    ]
    return cases


CASES: list[Case] = _cases()


# -- healthy sources, served beside the hostile ones ---------------------------------------------------------------

def healthy_feed(number: int) -> bytes:
    return rss("".join(
        item(f"Frisk sak {number}-{n}", f"http://example.org/frisk/{number}/{n}",
             extra=f"<pubDate>Fri, {20 + n} Jun 2019 09:30:00 +0200</pubDate>")
        for n in range(3)))


HEALTHY = {f"healthy-{number}": answer(healthy_feed(number)) for number in range(5)}


# -- the server --------------------------------------------------------------------------------------------------

class HostileServer:
    """Serves /hostile/NAME (each case) and /healthy/NAME on 127.0.0.1, writing raw bytes; stop() ends hangs."""

    def __init__(self, cases: list[Case] = CASES) -> None:
        self.writers: dict[str, Writer] = {f"/hostile/{case.name}": case.write for case in cases}
        self.writers |= {f"/healthy/{name}": writer for name, writer in HEALTHY.items()}
        self.stopping = threading.Event()
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.connection.settimeout(30)
                try:
                    request_line = self.rfile.readline(65_536).decode("latin-1")
                    while self.rfile.readline(65_536) not in (b"\r\n", b"\n", b""):
                        pass
                    path = request_line.split(" ")[1].split("?")[0] if " " in request_line else "/"
                    writer = server.writers.get(path, answer(b"not found", status="404 Not Found"))
                    writer(self.wfile, server.stopping)
                    self.wfile.flush()
                except OSError:  # the client gave up (the point of the slow cases)
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 256

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="hostile-server")

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


def sources_yaml(server: HostileServer, *, hostile_timeout: float, healthy_timeout: float,
                 cases: list[Case] = CASES) -> str:
    """The `sources:` entries of schedule.yaml for every case and every healthy feed."""
    lines: list[str] = []
    for case in cases:
        lines += [f"      - type: {case.kind}", f"        url: {server.base}/hostile/{case.name}",
                  f"        label: {case.name}", f"        timeout: {case.timeout or hostile_timeout:g}",
                  "        retries: 1",
                  "        max_bytes: 2000000"]
        if case.kind == "page":
            lines.append("        selectors:")
            lines += [f"          {key}: {value}" for key, value in PAGE_SELECTORS.items()]
    for name in HEALTHY:
        lines += ["      - type: feed", f"        url: {server.base}/healthy/{name}", f"        label: {name}",
                  f"        timeout: {healthy_timeout:g}"]
    return "\n".join(lines) + "\n"
