"""The draft's forms in the desk over real HTTP: what an editor is told when a change cannot be made, a refresh that
lists what changed at the sources, holding back an edition that waits for approval, refusals without CSRF, and an
approval whose send runs on after the request has been answered."""

from __future__ import annotations

import asyncio
import html
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.conftest import EDITOR, Desk, RecordingHandler, SMTPServer, add_article, free_port, start_desk
from tests.desk_client import csrf_of, logged_in

PAGE = "/redaksjon/kultur?dato=2019-07-01"
ACTIONS = "/redaksjon/kultur/utgave/2019-07-01"


@pytest.fixture
def desk(project: Path, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:
    # No link check: these tests are about the draft, and each page load would ask every link again.
    running, stop = start_desk(project, smtp_server, monkeypatch, link_timeout=None)
    try:
        yield running
    finally:
        stop()


def order(page: str) -> list[str]:
    return re.findall(r'<li data-url="([^"]+)">', page)


def flash(page: str) -> str:
    found = re.search(r'<div class="flash[^"]*" role="status">([^<]*)</div>', page)
    assert found, "no flash message on the page"
    return html.unescape(found.group(1))


def post(client: httpx.Client, action: str, **fields: str) -> str:
    """Post one of the draft's forms as the page would (its CSRF token, the date) and return the page it goes
    back to."""
    token = csrf_of(client.get(PAGE).text)
    response = client.post(f"{ACTIONS}/{action}", data={"csrf": token, "dato": "2019-07-01", **fields})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == PAGE
    return client.get(PAGE).text


def test_forms_without_their_csrf_token_are_refused_and_change_nothing(desk: Desk):
    client = logged_in(desk)
    first = order(client.get(PAGE).text)
    assert len(first) == 6
    for action, fields in [("fjern", {"url": first[0]}), ("flytt", {"url": first[1], "retning": "opp"}),
                           ("innledning", {"innledning": "Hei"}), ("hent-igjen", {}), ("godkjenn", {})]:
        for token in ("", "feil-kode"):
            refused = client.post(f"{ACTIONS}/{action}", data={**fields, "csrf": token, "dato": "2019-07-01"})
            assert refused.status_code == 403, action
            assert "Skjemaet ble avvist" in refused.text
    page = client.get(PAGE).text
    assert order(page) == first
    assert 'id="historikk"' not in page  # nothing was stored: the edition is still provisional
    assert desk.store.find_edition("kultur", "2019-07-01") is None


def test_what_cannot_be_done_is_said_in_norwegian_and_nothing_changes(desk: Desk):
    client = logged_in(desk)
    first = order(client.get(PAGE).text)

    page = post(client, "innledning", innledning="x" * 1001)
    assert flash(page) == "Innledningen kan ikke være lengre enn 1000 tegn. Den ble ikke lagret."
    page = post(client, "fjern", url="https://example.org/finnes-ikke")
    assert flash(page).startswith("Artikkelen er ikke i utgaven lenger.")
    page = post(client, "flytt", url=first[0], retning="sidelengs")
    assert flash(page) == "Velg om artikkelen skal flyttes opp eller ned."
    assert order(page) == first

    # Moving the first article up leaves the order as it is; moving it down swaps it with the second.
    page = post(client, "flytt", url=first[0], retning="ned")
    assert flash(page) == "Artikkelen er flyttet ned til plass 2."
    assert order(page) == [first[1], first[0], *first[2:]]
    # The last article cannot be dropped: an edition needs one.
    for url in order(page)[:-1]:
        page = post(client, "fjern", url=url)
    assert len(order(page)) == 1
    assert ">Fjern<" not in page
    page = post(client, "fjern", url=order(page)[0])
    assert flash(page) == "Utgaven må ha minst én artikkel, så den siste kan ikke fjernes."
    assert len(order(page)) == 1


def test_refresh_lists_what_changed_at_the_sources_and_keeps_the_introduction(desk: Desk):
    client = logged_in(desk)
    page = post(client, "innledning", innledning="Velkommen til sommerens siste brev.")
    first = order(page)
    page = post(client, "fjern", url=first[0])
    assert first[0] not in order(page)

    # At the source: one new article, one title changed.
    add_article(desk.project, "2019-06-28", "Ny festival i Bodø")
    changed = next(path for path in (desk.project / "content").glob("*.md") if "kulturskolen" in path.name)
    changed.write_text(changed.read_text(encoding="utf-8").replace("title: Ås satser på kulturskolen",
                                                                   "title: Ås satser stort på kulturskolen"),
                       encoding="utf-8")
    # Until the editor asks, the draft stays as it was made.
    page = client.get(PAGE).text
    assert "Ny festival i Bodø" not in page and "Ås satser på kulturskolen" in page

    page = post(client, "hent-igjen")
    assert flash(page) == ("Utkastet er hentet på nytt fra kildene: 2 nye, 1 endret, 0 borte. Se endringene "
                           "under.")
    refreshed = page[page.index('id="hentet"'):]
    assert "Ny festival i Bodø" in refreshed
    assert "Ås satser stort på kulturskolen</a>: endret tittel (var «Ås satser på kulturskolen»)" in refreshed
    assert first[0] in order(page)  # the dropped one is back: a refresh builds the draft anew
    assert "Velkommen til sommerens siste brev." in page
    assert f"<strong>{EDITOR}</strong>: Hentet på nytt fra kildene" in page

    # The next change is a new revision: the refresh's list has done its job.
    page = post(client, "flytt", url=order(page)[1], retning="opp")
    assert 'id="hentet"' not in page


def test_with_approval_the_editor_can_hold_the_edition_back(project: Path, smtp_server: SMTPServer,
                                                            monkeypatch: pytest.MonkeyPatch):
    config = yaml.safe_load((project / "schedule.yaml").read_text(encoding="utf-8"))
    config["digests"]["kultur"]["approval"] = {"auto_after": "2h"}
    config["digests"]["kultur"]["editors"] = ["redaksjon@example.org"]
    (project / "schedule.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    desk, stop = start_desk(project, smtp_server, monkeypatch, link_timeout=None)
    try:
        client = logged_in(desk)
        page = post(client, "innledning", innledning="Til godkjenning.")
        assert "Den venter på godkjenning før den går ut." in page
        assert ">Hold tilbake</button>" in page and ">Godkjenn og send</button>" in page
        page = post(client, "hold")
        assert flash(page).startswith("Utgaven er holdt tilbake")
        assert '<span id="utkast-tilstand">Holdt tilbake</span>' in page
        assert ">Hold tilbake</button>" not in page and ">Godkjenn og send</button>" in page
        assert smtp_server.received == []
        # The list of digests names the stored draft and its state, as `digest status` does.
        overview = client.get("/redaksjon").text
        assert '<a href="/redaksjon/kultur?dato=2019-07-01">2019-07-01</a>: Holdt tilbake, 6 artikler' in overview
    finally:
        stop()


@dataclass
class GatedHandler(RecordingHandler):
    """Holds every message at DATA until the test opens the gate: a send that takes as long as the test wants."""

    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope):
        self.arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        return await super().handle_DATA(server, session, envelope)


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_approve_answers_at_once_and_the_page_says_sendes_until_the_send_is_done(
        project: Path, monkeypatch: pytest.MonkeyPatch, run_cli):
    handler = GatedHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), decode_data=False)
    controller.start()
    server = SMTPServer("127.0.0.1", controller.port, handler)
    desk, stop = start_desk(project, server, monkeypatch, link_timeout=None)
    try:
        assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
        client = logged_in(desk)
        # The server holds the first message: the approval still answers, and the page shows the send under way.
        page = post(client, "godkjenn")
        assert flash(page) == "Utgaven er godkjent og sendes nå."
        assert '<span id="utkast-tilstand">Sendes</span>' in page
        assert 'id="sending-poll"' in page
        assert ">Godkjenn og send</button>" not in page and ">Fjern<" not in page
        assert handler.arrived.wait(30)
        assert client.get(f"{ACTIONS}/sendes").json()["sendes"] is True
        assert handler.received == []
        # A second approval meanwhile starts no second send.
        page = post(client, "godkjenn")
        assert '<span id="utkast-tilstand">Sendes</span>' in page
        handler.gate.set()
        _wait(lambda: client.get(f"{ACTIONS}/sendes").json() == {"sendes": False}, "the send never ended")
        page = client.get(PAGE).text
        assert '<span id="utkast-tilstand">Sendt</span>' in page
        assert "Utgaven er sendt: 3 e-poster gikk ut nå, og alle i målgruppen har den." in page
        assert f"<strong>{EDITOR}</strong>: Godkjent og sendt." in page
        assert sorted(r.recipients[0] for r in handler.received) == [
            "bjorn.aase@example.org", "kari.nordmann@example.org", "ola.hansen@example.org"]
    finally:
        handler.gate.set()
        stop()
        controller.stop()


def test_a_send_the_server_partly_refuses_is_reported_with_how_to_retry(desk: Desk, smtp_server: SMTPServer,
                                                                       run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    smtp_server.handler.replies["ola.hansen@example.org"] = "550 5.1.1 No such user"
    smtp_server.handler.replies["bjorn.aase@example.org"] = "554 5.7.1 Refused by local policy"
    client = logged_in(desk)
    post(client, "godkjenn")
    _wait(lambda: client.get(f"{ACTIONS}/sendes").json() == {"sendes": False}, "the send never ended")
    page = html.unescape(client.get(PAGE).text)
    assert ("Utsendingen stoppet før alle hadde fått utgaven: 1 e-post sendt, 1 adresse avvist av "
            "e-posttjeneren, 1 adresse finnes ikke og får ikke mer e-post. «digest send kultur --as-of 2019-07-01 "
            "--retry-failed» prøver de avviste adressene igjen.") in page
    assert '<span id="utkast-tilstand">Stoppet</span>' in page
