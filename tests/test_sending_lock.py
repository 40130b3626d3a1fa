"""One edition is sent by one process at a time; the lock dies with its holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import SMTPServer


def test_a_send_while_another_process_holds_the_edition_leaves_it_alone(project, smtp_server: SMTPServer, run_cli,
                                                                         monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    run_cli("subscribers", "import", "examples/subscribers.csv")
    assert run_cli("send", "kultur", "--as-of", "2019-07-01", "--dry-run").exit_code == 0
    # Another process creates the edition and holds its sending lock (as a live `digest send` would).
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from datetime import UTC, date, datetime
        from digest.config import load_settings
        from digest.app.editions import prepare
        from digest.store import Store
        settings = load_settings("schedule.yaml")
        store = Store.open("sqlite:///{project}/digest.db")
        edition = prepare(settings, store, "kultur", as_of=date(2019, 7, 1), now=datetime.now(UTC)).edition
        stored, _ = store.create_edition(edition)
        with store.sending_lock(stored.id) as ours:
            assert ours
            print("holding", flush=True)
            sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=project)
    try:
        assert holder.stdout.readline().strip() == "holding"
        busy = run_cli("send", "kultur", "--as-of", "2019-07-01")
        assert busy.exit_code == 0
        assert "Another process is sending kultur 2019-07-01 right now" in busy.stdout
        assert smtp_server.received == []
    finally:
        holder.kill()  # like kill -9: the lock must not outlive its holder
        holder.wait()
    after = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert after.exit_code == 0 and "sent 3" in after.stdout
    assert len(smtp_server.received) == 3
