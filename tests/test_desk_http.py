"""The desk over real HTTP: login, sessions and CSRF, the preview's checks and changes, test copies, the archive."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.conftest import EDITOR, Desk, SMTPServer, add_article, start_desk
from tests.desk_client import csrf_of, logged_in
from tests.helpers_mail import html_of, link_in, list_unsubscribe_url, text_of


def _send(run_cli, day: str) -> None:
    result = run_cli("send", "kultur", "--as-of", day)
    assert result.exit_code == 0, result.stderr


def _check(page: str, key: str) -> str:
    """The verdict the preview page shows for one check."""
    found = re.search(rf'data-check="{key}" data-verdict="(\w+)"', page)
    assert found, f"no {key} check on the page"
    return found.group(1)


def test_without_a_session_every_desk_page_is_the_login_page(desk: Desk, smtp_server: SMTPServer):
    for path in ("/redaksjon", "/redaksjon/kultur", "/redaksjon/kultur/epost", "/redaksjon/kultur/endringer"):
        response = httpx.get(desk.url + path, follow_redirects=True)
        assert response.status_code == 200, path
        assert "<h1>Logg inn i redaksjonen</h1>" in response.text, path
        assert str(response.url).startswith(desk.url + "/redaksjon/logg-inn?neste=/redaksjon"), path
    # A form posted without a session is answered with the login page too, and does nothing.
    refused = httpx.post(f"{desk.url}/redaksjon/kultur/test", data={"adresser": "red@example.org", "csrf": "x"})
    assert refused.status_code == 401
    assert "Logg inn i redaksjonen" in refused.text
    assert smtp_server.received == []


def test_login_sets_a_scoped_http_only_cookie_and_wrong_passwords_are_refused(desk: Desk):
    client = httpx.Client(base_url=desk.url)
    page = client.get("/redaksjon/logg-inn")
    wrong = client.post("/redaksjon/logg-inn", data={"navn": EDITOR, "passord": "feil passord her",
                                                      "csrf": csrf_of(page.text)})
    assert wrong.status_code == 401
    assert "Feil navn eller passord" in wrong.text
    assert client.get("/redaksjon", follow_redirects=False).status_code == 303

    fresh = httpx.Client(base_url=desk.url)
    page = fresh.get("/redaksjon/logg-inn")
    done = fresh.post("/redaksjon/logg-inn", data={"navn": EDITOR, "passord": "riktig hest batteri stift",
                                                    "csrf": csrf_of(page.text)})
    set_cookie = done.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/redaksjon" in set_cookie
    assert "secure" not in set_cookie  # base_url is http here
    assert done.headers["location"] == "/redaksjon"
    overview = fresh.get("/redaksjon")
    assert overview.status_code == 200
    assert "Innlogget som <strong>kari</strong>" in overview.text
    assert "0 7 * * mon" in overview.text


def test_session_cookie_is_secure_when_base_url_is_https(project, smtp_server, monkeypatch):
    running, stop = start_desk(project, smtp_server, monkeypatch, link_timeout=None, base_scheme="https")
    try:
        page = httpx.get(f"{running.url}/redaksjon/logg-inn")
        assert "; secure" in page.headers["set-cookie"].lower()
    finally:
        stop()


def test_forms_without_the_csrf_token_are_refused(desk: Desk, smtp_server: SMTPServer):
    # Login form without the token: refused even with the right password.
    stranger = httpx.Client(base_url=desk.url)
    stranger.get("/redaksjon/logg-inn")
    refused = stranger.post("/redaksjon/logg-inn", data={"navn": EDITOR, "passord": "riktig hest batteri stift"})
    assert refused.status_code == 403
    assert "Skjemaet ble avvist" in refused.text
    assert stranger.get("/redaksjon", follow_redirects=False).status_code == 303

    client = logged_in(desk)
    for data in ({"adresser": "red@example.org"}, {"adresser": "red@example.org", "csrf": "forfalsket"}):
        response = client.post("/redaksjon/kultur/test", data={**data, "dato": "2019-07-01"})
        assert response.status_code == 403
        assert "sikkerhetskode (CSRF)" in response.text
    assert client.post("/redaksjon/logg-ut", data={}).status_code == 403
    assert client.get("/redaksjon").status_code == 200  # still logged in: the logout without a token did nothing
    assert smtp_server.received == []


def test_logout_and_removed_editors_end_the_session(desk: Desk, run_cli):
    client = logged_in(desk)
    page = client.get("/redaksjon")
    out = client.post("/redaksjon/logg-ut", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert client.get("/redaksjon", follow_redirects=False).status_code == 303

    client = logged_in(desk)
    assert client.get("/redaksjon", follow_redirects=False).status_code == 200
    assert run_cli("editors", "remove", EDITOR).exit_code == 0
    assert client.get("/redaksjon", follow_redirects=False).status_code == 303


def test_preview_shows_subject_frames_text_and_checks(desk: Desk):
    client = logged_in(desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"})
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    text = page.text
    assert '<dd id="emne">Kultur: Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019</dd>' in text
    assert 'id="forhandstekst">Også: KS arrangerer lederkonferanse' in text
    assert 'width="600"' in text and 'width="375"' in text
    assert "KULTUR – 1. juli 2019" in text  # the plain-text part
    verdicts = {key: _check(text, key) for key in ("articles", "sources", "size", "alt", "headings", "contrast",
                                                   "unsubscribe", "links")}
    assert verdicts == {"articles": "ok", "sources": "ok", "size": "ok", "alt": "ok", "headings": "ok",
                        "contrast": "ok", "unsubscribe": "warn", "links": "ok"}  # unsubscribe: http base_url
    assert "Kilden ble hentet uten feil sist (" in text and "med 6 artikler i alt." in text
    assert "Alle svarer. Sjekket 8 adresser samtidig" in text
    # Every link of the e-mail was really asked for, once.
    assert len(desk.site.requests) == 8

    frame = client.get("/redaksjon/kultur/epost", params={"dato": "2019-07-01"})
    assert frame.status_code == 200
    assert '<base target="_blank">' in frame.text
    assert "Hei! Nytt om kultur" in frame.text and "abonnent@example.org" in frame.text
    assert "@@" not in frame.text
    assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]


def test_a_link_that_does_not_answer_fails_the_link_check(desk: Desk):
    desk.site.routes["/"].status = 404
    client = logged_in(desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"}).text
    assert _check(page, "links") == "fail"
    assert "Én adresse svarer ikke eller svarer med feil." in page
    assert f"{desk.site.base}/: svarte 404" in page


@pytest.fixture
def big_desk(project, smtp_server, monkeypatch):
    """The desk over a content folder with 60 more long articles, and room for 70 in an edition."""
    import yaml

    config = yaml.safe_load((project / "schedule.yaml").read_text(encoding="utf-8"))
    config["digests"]["kultur"]["max_articles"] = 70
    (project / "schedule.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    teaser = ("Kommunen har vedtatt en ny plan for kulturhuset, bibliotekene og kulturskolen, med flere "
              "konserter, lengre åpningstider og et eget tilbud for ungdom i alle bydelene. ") * 4
    for number in range(60):
        (project / "content" / f"2019-06-20-lang-{number}.md").write_text(
            f"---\ntitle: Lang sak nummer {number}\npublished: 2019-06-20T08:00:00+02:00\n"
            f"url: https://www.ks.no/lang/{number}/\n---\n{teaser}\n", encoding="utf-8")
    running, stop = start_desk(project, smtp_server, monkeypatch, link_timeout=None)
    try:
        yield running
    finally:
        stop()


def test_an_edition_past_the_clipping_limit_fails_the_size_check(big_desk: Desk):
    client = logged_in(big_desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"}).text
    assert "66 artikler" in page
    assert _check(page, "size") == "fail"
    found = re.search(r"HTML-en er (\d+) KB, over Gmails grense på omtrent 102 KB", page)
    assert found and int(found.group(1)) > 102, page
    assert "Lenkene er ikke sjekket." in page  # this desk runs without the link check


def test_test_copies_go_to_each_address_and_are_recorded_nowhere(desk: Desk, smtp_server: SMTPServer):
    client = logged_in(desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"})
    sent = client.post("/redaksjon/kultur/test", data={"adresser": "red@example.org, Vakt@Example.org",
                                                        "dato": "2019-07-01", "csrf": csrf_of(page.text)})
    assert sent.status_code == 303
    assert sent.headers["location"] == "/redaksjon/kultur?dato=2019-07-01"
    assert sorted(r.recipients[0] for r in smtp_server.received) == ["Vakt@example.org", "red@example.org"]
    message = smtp_server.received[0].message
    assert message["Subject"] == "[TEST] Kultur: Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019"
    assert "Hei! Nytt om kultur" in text_of(message)
    after = client.get(sent.headers["location"])
    assert "Testen er sendt til red@example.org, Vakt@example.org" in after.text
    assert desk.store.sent_editions("kultur") == []  # not an edition, not a delivery
    assert desk.store.find_edition("kultur", "2019-07-01") is None

    bad = client.post("/redaksjon/kultur/test", data={"adresser": "red@example.org ikke-en-adresse",
                                                       "dato": "2019-07-01", "csrf": csrf_of(after.text)})
    assert "«ikke-en-adresse» er ikke en gyldig e-postadresse. Ingen test ble sendt." in client.get(
        bad.headers["location"]).text
    assert len(smtp_server.received) == 2


def test_what_changed_since_the_last_sent_edition(desk: Desk, run_cli):
    _send(run_cli, "2019-07-01")
    content = desk.project / "content"
    # After the send: one article of that edition is edited at the source, one taken down, and a new one written.
    edited = content / "2019-05-06-lederkonferanse.md"
    edited.write_text(edited.read_text(encoding="utf-8").replace("title: KS arrangerer lederkonferanse",
                                                                 "title: KS arrangerer lederkonferanse i Bodø"),
                      encoding="utf-8")
    (content / "2018-09-14-regionalisering-av-kulturen.md").unlink()
    add_article(desk.project, "2019-07-05", "Sommerles for alle")

    client = logged_in(desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-08"}).text
    section = page[page.index('id="h-endringer"'):page.index('id="h-test"')]
    assert 'Forrige utgave: <a href="/arkiv/kultur/2019-07-01">2019-07-01</a>' in section
    assert "Nye artikler (1)" in section and "Sommerles for alle" in section
    assert "Endret hos kilden etter utsending (1)" in section
    assert "KS arrangerer lederkonferanse i Bodø</a>: endret tittel (var «KS arrangerer lederkonferanse»)" in section
    assert "Borte fra kildene (1)" in section and "Regionalisering av kulturen" in section


def test_archive_serves_the_view_in_browser_link_without_personal_links(desk: Desk, run_cli, smtp_server):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    _send(run_cli, "2019-07-01")
    message = next(r.message for r in smtp_server.received if r.recipients == ["kari.nordmann@example.org"])
    view = link_in(text_of(message), "/arkiv/kultur/")
    assert view == f"{desk.url}/arkiv/kultur/2019-07-01"
    assert view in html_of(message)

    page = httpx.get(view)  # no login, no cookie
    assert page.status_code == 200
    assert "set-cookie" not in page.headers
    assert "Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019" in page.text
    assert "Du får denne e-posten fordi du abonnerer på Kultur fra KS." in page.text
    for personal in ("kari.nordmann@example.org", "Kari", "/avmeld/", "/innstillinger/", "Meld deg av",
                     "Endre innstillinger", "@@"):
        assert personal not in page.text, personal
    assert list_unsubscribe_url(message).split("/avmeld/")[1] not in page.text
    assert "Vis i nettleser" in page.text

    listing = httpx.get(f"{desk.url}/arkiv/kultur")
    assert listing.status_code == 200 and 'href="/arkiv/kultur/2019-07-01">1. juli 2019</a>' in listing.text
    assert httpx.get(f"{desk.url}/arkiv/kultur/2019-07-08").status_code == 404
    assert httpx.get(f"{desk.url}/arkiv/ukjent/2019-07-01").status_code == 404


def test_change_counter_grows_when_a_content_file_or_template_changes(desk: Desk):
    client = logged_in(desk)
    first = client.get("/redaksjon/kultur/endringer").json()["versjon"]
    add_article(desk.project, "2019-06-30", "Kulturnatt i Bodø")
    deadline = time.monotonic() + 10
    while client.get("/redaksjon/kultur/endringer").json()["versjon"] == first:
        assert time.monotonic() < deadline, "the change was not noticed"
        time.sleep(0.05)
    # The preview built after the change has the new article.
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"}).text
    assert "Kulturnatt i Bodø" in page


def test_unsubscribe_post_still_sets_no_cookie_with_the_desk_in_the_app(desk: Desk, run_cli, smtp_server):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    _send(run_cli, "2019-07-01")
    url = list_unsubscribe_url(smtp_server.received[0].message)
    response = httpx.post(url, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers


def test_ping_tells_preview_open_that_the_desk_is_there(desk: Desk):
    response = httpx.get(f"{desk.url}/redaksjon/ping")
    assert response.status_code == 200 and response.text == "kulturdigest"
    assert "set-cookie" not in response.headers


def test_an_empty_edition_fails_the_content_check_and_shows_no_frames(desk: Desk, run_cli):
    _send(run_cli, "2019-07-01")
    client = logged_in(desk)
    page = client.get("/redaksjon/kultur", params={"dato": "2019-07-08"}).text
    assert "<h1>Kultur: neste utgave</h1>" in page
    assert _check(page, "articles") == "fail"
    assert "Utgaven er tom: ingen nye artikler siden forrige utgave, så den blir ikke sendt." in page
    assert "No new articles for &#39;kultur&#39;" in page  # the pipeline's own reason, as `digest send` says it
    assert "<iframe" not in page and 'id="h-test"' not in page
    assert client.get("/redaksjon/kultur/epost", params={"dato": "2019-07-08"}).status_code == 404

    # The day that was sent is shown as it was sent.
    sent = client.get("/redaksjon/kultur", params={"dato": "2019-07-01"}).text
    assert "<h1>Kultur: utgaven 2019-07-01</h1>" in sent
    assert "allerede sendt (vist slik den ble sendt)" in sent


def test_the_digest_list_shows_the_last_edition_and_the_schedule(desk: Desk, run_cli):
    _send(run_cli, "2019-07-01")
    page = logged_in(desk).get("/redaksjon").text
    assert '<a href="/arkiv/kultur/2019-07-01">2019-07-01</a>, 6 artikler' in page
    assert "cron <code>0 7 * * mon</code>, Europe/Oslo" in page
    assert 'href="/redaksjon/kultur">Forhåndsvis neste utgave' in page


def test_the_digest_list_shows_the_next_run_when_the_scheduler_is_installed(desk: Desk):
    pytest.importorskip("digest.scheduler")
    page = logged_in(desk).get("/redaksjon").text
    assert re.search(r'<time datetime="2019-07-0[18]T07:00:00\+02:00">2019-07-0[18] 07:00</time>', page), page


def test_the_watcher_covers_the_email_templates_and_the_content_folders(desk: Desk):
    from digest.render import TEMPLATES

    paths = desk.app.state.desk.changes.paths  # type: ignore[attr-defined]
    assert TEMPLATES.resolve() in paths
    assert (desk.project / "content").resolve() in paths


def test_login_returns_only_to_pages_of_the_desk(desk: Desk):
    from digest.web.auth import safe_next

    assert safe_next("/redaksjon/kultur?dato=2019-07-01") == "/redaksjon/kultur?dato=2019-07-01"
    for elsewhere in ("https://evil.example/", "//evil.example/redaksjon", "/redaksjonevil", "/avmeld/x", ""):
        assert safe_next(elsewhere) == "/redaksjon", elsewhere
    client = httpx.Client(base_url=desk.url)
    page = client.get("/redaksjon/logg-inn", params={"neste": "https://evil.example/"})
    assert 'name="neste" value="/redaksjon"' in page.text
    done = client.post("/redaksjon/logg-inn", data={"navn": EDITOR, "passord": "riktig hest batteri stift",
                                                     "csrf": csrf_of(page.text), "neste": "https://evil.example/"})
    assert done.headers["location"] == "/redaksjon"
