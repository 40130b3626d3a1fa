"""Shared fixtures: a real aiosmtpd server on 127.0.0.1, a project folder in tmp_path, and the CLI in-process."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class RecordingHandler:
    """Records what the server accepted. `replies` maps a recipient to a scripted RCPT reply (e.g. '550 …')."""

    received: list[Received] = field(default_factory=list)
    replies: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SMTPServer:
    host: str
    port: int
    handler: RecordingHandler

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def received(self) -> list[Received]:
        return self.handler.received


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    try:
        yield SMTPServer("127.0.0.1", controller.port, handler)
    finally:
        controller.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project's schedule.yaml, content/ and example list in a temporary folder, used as cwd."""
    for name in ("schedule.yaml",):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "content", tmp_path / "content")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", "test-secret")
    for variable in ("DIGEST_DB_URL", "DIGEST_TRANSPORT", "DIGEST_BASE_URL", "DIGEST_CONFIG", "DIGEST_SMTP_PASSWORD"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


@dataclass
class CLIResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run `digest ARGS…` in-process, as the console script does (errors → one line, exit code)."""
    from digest.cli import main

    def run(*args: str) -> CLIResult:
        import sys

        argv = sys.argv
        sys.argv = ["digest", *args]
        code = 0
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        finally:
            sys.argv = argv
        captured = capsys.readouterr()
        return CLIResult(code, captured.out, captured.err)

    return run


# -- the web app (issue 4): uvicorn in a background thread on 127.0.0.1 and a free port ---------------------------

@dataclass
class WebApp:
    url: str
    settings: object  # digest.config.Settings
    store: object     # digest.store.Store


@pytest.fixture
def web_app(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebApp]:
    """`digest serve` for the project folder, its links (DIGEST_BASE_URL) pointing at it, mail going to smtp_server."""
    from digest.config import load_settings
    from digest.store import Store
    from digest.web import create_app
    from digest.web.server import ServerThread

    port = free_port()
    monkeypatch.setenv("DIGEST_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    settings = load_settings(project / "schedule.yaml")
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    try:
        with ServerThread(create_app(settings, store), port=port) as url:
            yield WebApp(url, settings, store)
    finally:
        store.close()


def add_article(project: Path, day: str, title: str) -> None:
    """A new article in content/, published at 08:00 Oslo time that day, so a later edition has something new."""
    slug = title.lower().replace(" ", "-")
    (project / "content" / f"{day}-{slug}.md").write_text(
        f"---\ntitle: {title}\npublished: {day}T08:00:00+02:00\nurl: https://www.ks.no/{slug}/\n---\n"
        "Et nytt tilbud for barn og unge i kommunene.\n",
        encoding="utf-8",
    )


# -- the editors' desk (issue 7): the app with a fixed clock, an editor, and a local "web" for the e-mail's links ---

EDITOR = "kari"
EDITOR_PASSWORD = "riktig hest batteri stift"
# Monday 1 July 2019, 07:00 in Oslo: when the Kultur edition of that day is due.
DESK_NOW = "2019-07-01T05:00:00+00:00"


@dataclass
class Desk:
    url: str
    settings: object  # digest.config.Settings
    store: object     # digest.store.Store
    site: object      # tests.httpserver.HTTPFixtureServer: every link of the e-mail points here
    project: Path
    app: object = None


def point_links_at(project: Path, site_base: str) -> list[str]:
    """Rewrite the project's article links (content/, schedule.yaml) from www.ks.no to the local site; the paths."""
    import re

    paths: set[str] = set()
    for path in [project / "schedule.yaml", *sorted((project / "content").glob("*.md"))]:
        text = path.read_text(encoding="utf-8").replace("https://www.ks.no", site_base)
        path.write_text(text, encoding="utf-8")
        paths |= {match or "/" for match in re.findall(re.escape(site_base) + r"(/[^\s\"'<>]*)?", text)}
    return sorted(paths)


def start_desk(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch, *,
               link_timeout: float | None = 3.0, base_scheme: str = "http"):
    """The desk over the project (links → a local HTTP site answering 200), an editor, mail to smtp_server."""
    from datetime import datetime

    from digest.config import load_settings
    from digest.editors import hash_password
    from digest.store import Store
    from digest.web import create_app
    from digest.web.server import ServerThread
    from tests.httpserver import HTTPFixtureServer, Route

    site = HTTPFixtureServer().start()
    for path in point_links_at(project, site.base):
        site.routes[path] = Route(body=b"<!doctype html><title>ok</title>", content_type="text/html")
    port = free_port()
    monkeypatch.setenv("DIGEST_BASE_URL", f"{base_scheme}://127.0.0.1:{port}")
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    settings = load_settings(project / "schedule.yaml")
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    now = datetime.fromisoformat(DESK_NOW)
    # A cheaper scrypt cost than production (the hash records it), so logging in does not slow every test down.
    store.save_editor(EDITOR, hash_password(EDITOR_PASSWORD, n=2**12), now=now)
    app = create_app(settings, store, now=lambda: now, link_timeout=link_timeout)
    server = ServerThread(app, port=port)
    url = server.__enter__()
    desk = Desk(url, settings, store, site, project, app)

    def stop() -> None:
        app.state.desk.sends.wait(30)  # a send the desk started must not outlive the store it writes to
        server.__exit__(None, None, None)
        app.state.desk.changes.stop()
        site.stop()
        store.close()

    return desk, stop


@pytest.fixture
def desk(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    running, stop = start_desk(project, smtp_server, monkeypatch)
    try:
        yield running
    finally:
        stop()


# -- headless Chromium ------------------------------------------------------------------------------------------------
CHROMIUM = "/usr/bin/chromium"  # Debian's; `make test` installs it. Playwright never downloads a browser here.
# The machine has no network: these keep Chromium from reaching out (updates, sync, field trials).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (each test gets its own context). Not per session: Playwright's sync
    API keeps an event loop running while it is open, and later tests call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()
