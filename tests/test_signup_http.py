"""Sign-up with double opt-in over real HTTP and SMTP: honeypot, rate limit, one confirmation per hour, consent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx

from digest.consent import SignUp
from digest.web import create_app
from digest.web.ratelimit import RateLimiter
from digest.web.server import ServerThread
from tests.conftest import free_port
from tests.helpers_mail import link_in, text_of

FORM = {"epost": "liv.berg@example.org", "navn": "Liv Berg", "kommune": "Asker", "nyhetsbrev": "kultur"}


def test_form_page_is_accessible_bokmal(web_app):
    page = httpx.get(f"{web_app.url}/abonner")
    assert page.status_code == 200
    assert '<html lang="nb">' in page.text
    for field in ("epost", "navn", "kommune"):
        assert f'<label for="{field}">' in page.text and f'id="{field}"' in page.text
    assert "<legend>Nyhetsbrev</legend>" in page.text
    assert 'value="kultur" checked' in page.text  # the only digest is chosen already
    assert "Jeg vil ha nyhetsbrevet Kultur fra KS på e-post." in page.text
    assert "set-cookie" not in page.headers


def test_confirmed_address_only_receives_after_following_the_link(web_app, smtp_server, run_cli):
    response = httpx.post(f"{web_app.url}/abonner", data=FORM)
    assert response.status_code == 200
    assert "Sjekk e-posten din" in response.text
    assert len(smtp_server.received) == 1
    confirmation = smtp_server.received[0].message
    assert confirmation["To"].addresses[0].addr_spec == "liv.berg@example.org"
    assert confirmation["Subject"] == "Bekreft abonnementet på Kultur"
    link = link_in(text_of(confirmation), "/bekreft/")

    # Not yet a subscriber: the edition goes to nobody.
    assert run_cli("send", "kultur", "--as-of", "2019-07-01", "--dry-run").stdout.count("would go to 0 ") == 1

    # A mail scanner fetching the link confirms nothing.
    page = httpx.get(link)
    assert page.status_code == 200 and "Bekreft abonnementet" in page.text
    assert web_app.store.subscriber_by_email("liv.berg@example.org") is None

    done = httpx.post(link, follow_redirects=False)
    assert done.status_code == 200
    assert "Takk! Du er påmeldt" in done.text
    profile = web_app.store.profile(web_app.store.subscriber_by_email("liv.berg@example.org").id)
    assert (profile.name, profile.municipality, profile.digests) == ("Liv Berg", "Asker", ("kultur",))

    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    assert [r.recipients for r in smtp_server.received[1:]] == [["liv.berg@example.org"]]

    exported = json.loads(run_cli("subscribers", "export", "liv.berg@example.org").stdout)
    consent = exported["consents"][0]
    assert consent["event"] == "consent" and consent["digests"] == ["kultur"]
    assert consent["source"] == "web:/abonner"
    assert consent["text"].startswith("Jeg vil ha nyhetsbrevet Kultur fra KS på e-post.")
    assert exported["deliveries"][0]["state"] == "sent"


def test_signing_up_twice_within_the_hour_sends_one_confirmation(web_app, smtp_server):
    for _ in range(3):
        assert httpx.post(f"{web_app.url}/abonner", data=FORM).status_code == 200
    assert len(smtp_server.received) == 1


def test_honeypot_filled_pretends_success_and_does_nothing(web_app, smtp_server):
    response = httpx.post(f"{web_app.url}/abonner", data={**FORM, "nettside": "http://spam.example"})
    assert response.status_code == 200 and "Sjekk e-posten din" in response.text
    assert smtp_server.received == []
    assert web_app.store.export_address("liv.berg@example.org")["pending_signups"] == []


def test_bad_input_is_named_next_to_its_field(web_app, smtp_server):
    response = httpx.post(f"{web_app.url}/abonner", data={"epost": "ikke-en-adresse", "navn": "Liv"})
    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert "Skriv inn en gyldig e-postadresse" in response.text
    assert 'aria-invalid="true" aria-describedby="epost-feil"' in response.text
    assert "Velg minst ett nyhetsbrev." in response.text
    assert 'value="Liv"' in response.text  # what was typed is kept
    assert smtp_server.received == []


def test_rate_limit_per_ip(project, smtp_server, monkeypatch):
    from digest.config import load_settings
    from digest.store import Store

    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    app = create_app(load_settings(project / "schedule.yaml"), store, signup_limit=RateLimiter(2, 600))
    with ServerThread(app, port=free_port()) as url:
        codes = [httpx.post(f"{url}/abonner", data={**FORM, "epost": f"p{i}@example.org"}).status_code
                 for i in range(3)]
    store.close()
    assert codes == [200, 200, 429]
    assert len(smtp_server.received) == 2


def test_an_old_confirmation_link_expires_and_never_brings_back_someone_who_left(web_app):
    store = web_app.store
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    signup = SignUp(email="per@example.org", digests=("kultur",), source="test", consent_text="ja")
    old = store.add_pending_signup(signup, now=now)
    assert store.confirm_signup(old.pending_id, now=now + timedelta(days=15)) is None

    fresh = store.add_pending_signup(signup, now=now + timedelta(days=15))
    profile = store.confirm_signup(fresh.pending_id, now=now + timedelta(days=15))
    assert profile is not None and profile.status == "active"
    assert store.leave(profile.subscriber_id, source="test", now=now + timedelta(days=16))
    again = store.confirm_signup(fresh.pending_id, now=now + timedelta(days=16))
    assert again is not None and again.status == "unsubscribed"
