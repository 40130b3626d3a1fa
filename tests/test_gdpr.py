"""GDPR: export prints everything stored about an address; forget erases it but keeps it off every list."""

from __future__ import annotations

import json

import sqlalchemy as sa

from tests.conftest import SMTPServer


def test_export_then_forget(project, run_cli, smtp_server: SMTPServer, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0

    exported = run_cli("subscribers", "export", "Kari.Nordmann@example.org")
    assert exported.exit_code == 0
    data = json.loads(exported.stdout)
    assert data["subscriber"]["name"] == "Kari Nordmann"
    assert data["subscriber"]["status"] == "active"
    assert data["subscriber"]["source"] == "import:subscribers.csv"
    assert data["subscriber"]["digests"] == ["kultur"]
    assert data["consents"][0]["source"] == "import:subscribers.csv"
    assert data["consents"][0]["text"].startswith("Samtykke innhentet av organisasjonen")
    assert [(d["digest"], d["edition"], d["state"]) for d in data["deliveries"]] == [("kultur", "2019-07-01", "sent")]
    assert data["suppressed"] is None

    forgot = run_cli("subscribers", "forget", "kari.nordmann@example.org")
    assert forgot.exit_code == 0
    assert forgot.stdout.startswith("Forgot k***@example.org")

    after = json.loads(run_cli("subscribers", "export", "kari.nordmann@example.org").stdout)
    assert after == {"email": "kari.nordmann@example.org", "subscriber": None, "suppressed": "forgotten",
                     "pending_signups": []}
    # Nothing readable is left in any table: only a salted hash.
    engine = sa.create_engine(f"sqlite:///{project / 'digest.db'}")
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f"SELECT * FROM {table}")):
                assert not any("kari" in str(value).lower() for value in row), table
    engine.dispose()

    reimport = run_cli("subscribers", "import", "examples/subscribers.csv")
    assert "Imported examples/subscribers.csv: 0 new, 0 updated, 2 unchanged." in reimport.stdout
    assert "Not resubscribed: 1 addresses on the suppression list" in reimport.stdout
    assert "k***@example.org" in reimport.stdout
    assert "kari" not in run_cli("subscribers", "list").stdout.lower()


def test_bad_address_is_one_line(project, run_cli):
    result = run_cli("subscribers", "export", "not-an-address")
    assert result.exit_code != 0
    assert "not a valid e-mail address" in result.stderr and "Traceback" not in result.stderr
