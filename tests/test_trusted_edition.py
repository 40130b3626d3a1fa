"""The edition is a stored thing (issue 10): what the editors saw in the [TEST] copy is what approval sends, a
refresh happens only on purpose and needs approval again, and every run says truthfully whether everyone has it."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest

from digest.app.editions import edition_target
from digest.config import load_settings
from digest.scheduler import run_due
from tests.conftest import SMTPServer, free_port
from tests.httpserver import HTTPFixtureServer, Route
from tests.scheduling import edit_schedule, kinds
from tests.sending_helpers import AS_OF, add_sending, import_people
from tests.smtp_scripted import ScriptedHandler, password_check, scripted_server
from tests.test_scheduler import MONDAY_RUN, SUBSCRIBERS, runtime
from tests.test_smtp_tls import ca, server_tls, trust_ca  # noqa: F401  (fixtures)

OSLO = ZoneInfo("Europe/Oslo")


def rss(items: list[tuple[str, str, datetime]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>https://kommune.example.no/{slug}</link>"
        f"<description>Om {title.lower()}.</description><pubDate>{format_datetime(when)}</pubDate></item>"
        for title, slug, when in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Kommunen</title>'
            f"<link>https://kommune.example.no/</link>{entries}</channel></rss>").encode()


FIRST_FEED = [(f"Sak {n} om kultur", f"sak-{n}", MONDAY_RUN - timedelta(days=n)) for n in range(1, 6)]


@pytest.fixture
def feed():
    with HTTPFixtureServer({"/kultur.rss": Route(body=rss(FIRST_FEED))}) as server:
        yield server


@pytest.fixture
def approval_project(project, smtp_server: SMTPServer, run_cli, monkeypatch, feed):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    edit_schedule(project, approval="required", editors=["redaksjon@ks.no"],
                  sources=[{"type": "feed", "url": f"{feed.base}/kultur.rss", "label": "Kommunen"}])
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    return project


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def article_links(message: EmailMessage) -> list[str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    return re.findall(r"Les mer: (\S+)", text)


def change_the_source(feed: HTTPFixtureServer) -> None:
    """A new item appears and a title is changed at the source after the editors got their [TEST] copy."""
    items = [("Helt ny sak", "ny-sak", MONDAY_RUN - timedelta(hours=2)),
             ("Sak 1 om kultur, oppdatert", "sak-1", FIRST_FEED[0][2]), *FIRST_FEED[1:]]
    feed.routes["/kultur.rss"] = Route(body=rss(items))


def test_approve_sends_exactly_what_the_test_copy_showed(approval_project, smtp_server, feed, run_cli):
    rt = runtime(approval_project, MONDAY_RUN + timedelta(minutes=1))
    assert kinds(run_due(rt)) == ["awaiting_approval"]
    [test_copy] = [parsed(r.data) for r in smtp_server.received]
    assert test_copy["Subject"] == "[TEST] Kultur: Sak 1 om kultur"
    shown = article_links(test_copy)
    assert len(shown) == 5

    change_the_source(feed)
    result = run_cli("approve", "kultur")
    assert result.exit_code == 0, result.stderr

    sent = [parsed(r.data) for r in smtp_server.received[1:]]
    assert sorted(message["To"].addresses[0].addr_spec for message in sent) == sorted(SUBSCRIBERS)
    for message in sent:
        assert message["Subject"] == "Kultur: Sak 1 om kultur"
        assert article_links(message) == shown
        assert "Helt ny sak" not in message.get_body(preferencelist=("plain",)).get_content()


def test_refresh_shows_the_changes_and_waits_for_approval_again(approval_project, smtp_server, feed, run_cli):
    rt = runtime(approval_project, MONDAY_RUN + timedelta(minutes=1))
    assert kinds(run_due(rt)) == ["awaiting_approval"]
    change_the_source(feed)

    refreshed = run_cli("edition", "refresh", "kultur", "2026-11-23")
    assert refreshed.exit_code == 0, refreshed.stderr
    assert "new: Helt ny sak" in refreshed.stdout
    assert "Sak 1 om kultur → Sak 1 om kultur, oppdatert" in refreshed.stdout
    assert "Approval: pending; `digest approve kultur 2026-11-23` sends it." in refreshed.stdout
    assert len(smtp_server.received) == 1  # only the editors' first [TEST] copy

    assert kinds(run_due(rt)) == ["awaiting_approval"]
    shown = run_cli("edition", "show", "kultur", "2026-11-23").stdout
    assert "1. Helt ny sak" in shown and "Hentet på nytt fra kildene: 1 nye, 1 endret ved kilden." in shown

    assert run_cli("approve", "kultur", "2026-11-23").exit_code == 0
    sent = [parsed(r.data) for r in smtp_server.received[1:]]
    assert len(sent) == 3
    assert {message["Subject"] for message in sent} == {"Kultur: Helt ny sak"}


def test_a_refresh_after_approval_needs_approval_again(approval_project, smtp_server, feed, run_cli):
    edit_schedule(approval_project, approval={"auto_after": "2h"}, editors=["redaksjon@ks.no"])
    rt = runtime(approval_project, MONDAY_RUN + timedelta(minutes=1))
    assert kinds(run_due(rt)) == ["awaiting_approval"]
    rt.store.decide_approval("kultur", "2026-11-23", to="approved", allowed_from=("pending",), by="kari")
    change_the_source(feed)
    assert run_cli("edition", "refresh", "kultur").exit_code == 0
    assert rt.store.approval("kultur", "2026-11-23").state == "pending"
    assert [message["To"] for message in map(parsed, (r.data for r in smtp_server.received))] == ["redaksjon@ks.no"]


def test_preview_and_scheduled_run_mean_the_same_edition(project):
    digest = load_settings(project / "schedule.yaml").digest("kultur")
    store = runtime(project).store
    tuesday = datetime(2026, 11, 24, 12, 0, tzinfo=OSLO)
    target = edition_target(digest, store, "kultur", None, tuesday)
    assert target.key == "2026-11-30"  # the next scheduled run, a Monday, not today
    assert target.until == datetime(2026, 11, 30, 7, 0, tzinfo=OSLO)
    on_the_day = edition_target(digest, store, "kultur", datetime(2026, 11, 30, 7, 0).date(), tuesday)
    assert on_the_day.until == target.until  # a date means that day's scheduled run, not 23:59
    just_after = edition_target(digest, store, "kultur", None, datetime(2026, 11, 30, 7, 3, tzinfo=OSLO))
    assert just_after.key == "2026-11-30"  # within the grace and not sent: still today's run


# -- truthful outcomes --------------------------------------------------------------------------------------------


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_send_and_run_once_fail_loudly_when_connections_are_refused(project, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{free_port()}")
    add_sending(project, max_errors=2, retry_delay_seconds=0.01)
    import_people(project, run_cli, 3)
    result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert "Stopped early" in last_line(result.stdout) and "still wait" in last_line(result.stdout)

    now = datetime.now(OSLO).replace(second=0, microsecond=0)
    edit_schedule(project, schedule={"cron": f"{now.minute} {now.hour} * * *", "timezone": "Europe/Oslo"})
    once = run_cli("run", "--once")
    assert once.exit_code == 1
    assert "run_incomplete" in last_line(once.stderr) and "still wait" in last_line(once.stderr)


def test_send_fails_loudly_when_the_login_is_refused(project, run_cli, monkeypatch, server_tls, trust_ca):  # noqa: F811
    handler = ScriptedHandler()
    add_sending(project, pool_size=1, max_errors=2, retry_delay_seconds=0.01)
    with scripted_server(handler, tls_context=server_tls, require_starttls=True,
                         authenticator=password_check("digest", "right")) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://digest@127.0.0.1:{server.port}")
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "wrong")
        import_people(project, run_cli, 3)
        result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert handler.received == []
    assert "Stopped early" in last_line(result.stdout)


def test_refused_recipients_are_reported_on_every_later_run_until_retried(project, run_cli, monkeypatch):
    people = import_people(project, run_cli, 6)
    refused = people[:2]
    handler = ScriptedHandler(script={address: ["RCPT:552 5.2.2 Mailbox full"] for address in refused})
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        first = run_cli("send", "kultur", "--as-of", AS_OF)
        assert first.exit_code == 2, first.stderr
        again = run_cli("send", "kultur", "--as-of", AS_OF)
        assert again.exit_code == 1
        assert last_line(again.stdout) == (
            "2 subscribers were refused by the server (5xx) and do not have kultur 2019-07-01; "
            "`digest send kultur --as-of 2019-07-01 --retry-failed` tries them again.")
        assert "Every subscriber already has this edition" not in again.stdout
        status = run_cli("status").stdout
        assert "2 subscribers refused by the server (5xx): `digest send kultur --as-of 2019-07-01 --retry-failed`" \
            in " ".join(status.split())
        retried = run_cli("send", "kultur", "--as-of", AS_OF, "--retry-failed")
        assert retried.exit_code == 0, retried.stderr
    assert handler.copies() == dict.fromkeys(people, 1)


def test_an_item_first_seen_after_the_draft_was_made_goes_into_the_next_edition(project, feed, run_cli):
    """The draft for Monday is made on Thursday; an item that appears on Saturday (dated Saturday, before Monday's
    run) is not in Monday's frozen edition, so it belongs to the one after, even if something collected on Saturday."""
    from datetime import date

    from digest.app.editions import prepare
    from digest.app.sending import send_edition
    from digest.transports import transport_from_url

    edit_schedule(project, sources=[{"type": "feed", "url": f"{feed.base}/kultur.rss", "label": "Kommunen"}])
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    rt = runtime(project)
    settings, store = rt.settings, rt.store
    thursday, saturday = MONDAY_RUN - timedelta(days=4), MONDAY_RUN - timedelta(days=2)
    monday = prepare(settings, store, "kultur", as_of=date(2026, 11, 23), now=thursday, freeze=True)
    assert monday.state == "draft" and len(monday.edition.articles) == 5

    feed.routes["/kultur.rss"] = Route(body=rss([("Lørdagssak", "lordag", saturday), *FIRST_FEED]))
    # Someone looks at the edition after Monday's on Saturday: the item is seen (and recorded) then.
    later = prepare(settings, store, "kultur", as_of=date(2026, 11, 30), now=saturday)
    assert "Lørdagssak" in [a.title for a in later.edition.articles]

    outbox = transport_from_url("outbox:outbox", root=project)
    sent = send_edition(settings, store, outbox, "kultur", as_of=date(2026, 11, 23), now=MONDAY_RUN)
    assert sent.sent == 3 and "Lørdagssak" not in [a.title for a in store.find_edition("kultur", "2026-11-23")
                                                     .edition.articles]
    following = prepare(settings, store, "kultur", as_of=date(2026, 11, 30), now=MONDAY_RUN + timedelta(days=7))
    assert [a.title for a in following.edition.articles] == ["Lørdagssak"]


def test_editors_shape_the_draft_and_approval_sends_it_as_shaped(project, smtp_server, run_cli, monkeypatch):
    from digest.app.drafts import approve_edition, drop_article, move_article, set_introduction
    from digest.errors import DraftError
    from digest.transports import transport_from_url

    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    edit_schedule(project, approval="required", editors=["redaksjon@ks.no"])
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    rt = runtime(project)
    settings, store, now = rt.settings, rt.store, datetime(2019, 6, 30, 12, 0, tzinfo=OSLO)
    key = "2019-07-01"
    articles = list(prepare_frozen(settings, store, key, now).edition.articles)
    drop_article(settings, store, "kultur", key, articles[1].url, editor="kari", now=now)
    move_article(settings, store, "kultur", key, articles[3].url, -1, editor="kari", now=now)
    set_introduction(settings, store, "kultur", key, "Hei @@email@@ og {name}!\n\nGod sommer.", editor="ola", now=now)
    with pytest.raises(DraftError):
        drop_article(settings, store, "kultur", key, "https://example.org/not-there", editor="kari", now=now)

    outcome = approve_edition(settings, store, transport_from_url(settings.transport, root=project), "kultur", key,
                              editor="kari", now=now)
    assert outcome.exit_code == 0, outcome.reason
    expected = [articles[0], articles[3], articles[2], *articles[4:]]
    messages = [parsed(r.data) for r in smtp_server.received]
    assert len(messages) == 3
    for message in messages:
        assert article_links(message) == [a.url for a in expected]
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "God sommer." in text and "God sommer." in html
        # The introduction is text: a placeholder's spelling in it stays literal, no address is filled in.
        assert "Hei @@email@@ og {name}!" in text and "Hei @@email@@ og {name}!" in html
        assert message["Subject"] == f"Kultur: {expected[0].title}"
    history = [change.editor + ":" + change.action for change in store.draft_history("kultur", key)]
    assert history == ["system:made", "kari:dropped", "kari:moved", "ola:introduction", "kari:approved"]
    with pytest.raises(DraftError):  # sent: it no longer changes
        set_introduction(settings, store, "kultur", key, "For sent.", editor="ola", now=now)


def prepare_frozen(settings, store, key, now):
    from datetime import date

    from digest.app.editions import prepare

    return prepare(settings, store, "kultur", as_of=date.fromisoformat(key), now=now, freeze=True)
