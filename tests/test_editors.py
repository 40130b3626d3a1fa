"""Editor accounts: `digest editors …`, scrypt hashes, and the session stamp that ends sessions."""

from __future__ import annotations

import io
import sqlite3

import pytest

from digest.editors import authenticate, hash_password, session_stamp, verify_password
from digest.store import Store

PASSWORD = "et langt og godt passord"


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_add_list_and_remove_from_the_cli(project, run_cli, monkeypatch):
    _stdin(monkeypatch, PASSWORD + "\n")
    added = run_cli("editors", "add", "Kari", "--password-stdin")
    assert added.exit_code == 0, added.stderr
    assert added.stdout == "Editor kari can now log in at /redaksjon.\n"
    stored = sqlite3.connect(project / "digest.db").execute("SELECT name, password_hash FROM editors").fetchall()
    assert len(stored) == 1 and stored[0][0] == "kari"
    assert stored[0][1].startswith("scrypt$131072$8$1$") and PASSWORD not in stored[0][1]

    listed = run_cli("editors", "list")
    assert listed.stdout.splitlines()[-1] == "1 editors" and listed.stdout.startswith("kari  (added ")

    _stdin(monkeypatch, "et annet langt passord\n")
    again = run_cli("editors", "add", "kari", "--password-stdin")
    assert again.exit_code == 1
    assert again.stderr == ("error: an editor named 'kari' exists already (use --replace to set a new password)\n")
    _stdin(monkeypatch, "et annet langt passord\n")
    assert run_cli("editors", "add", "kari", "--password-stdin", "--replace").exit_code == 0

    assert run_cli("editors", "remove", "kari").stdout == "Removed editor kari.\n"
    gone = run_cli("editors", "remove", "kari")
    assert (gone.exit_code, gone.stderr) == (1, "error: no editor named 'kari'\n")


@pytest.mark.parametrize(("name", "password", "message"), [
    ("ola", "kort", "error: the password must have at least 12 characters\n"),
    ("ola nordmann", PASSWORD, "error: 'ola nordmann' is not a usable editor name"),
    ("åse", PASSWORD, "error: 'åse' is not a usable editor name"),
])
def test_bad_names_and_short_passwords_are_refused_and_nothing_is_stored(project, run_cli, monkeypatch, name,
                                                                         password, message):
    _stdin(monkeypatch, password + "\n")
    result = run_cli("editors", "add", name, "--password-stdin")
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr
    assert run_cli("editors", "list").stdout.strip() == "0 editors"


def test_hashes_are_salted_and_verify_only_the_right_password():
    first, second = hash_password(PASSWORD, n=2**10), hash_password(PASSWORD, n=2**10)
    assert first != second
    assert verify_password(PASSWORD, first) and verify_password(PASSWORD, second)
    assert not verify_password(PASSWORD + " ", first)
    assert not verify_password(PASSWORD, "garbage")


def test_a_new_password_changes_the_session_stamp(tmp_path):
    from datetime import UTC, datetime

    store = Store.open(f"sqlite:///{tmp_path / 'd.db'}")
    now = datetime(2019, 7, 1, tzinfo=UTC)
    store.save_editor("kari", hash_password(PASSWORD, n=2**10), now=now)
    assert authenticate(store, "KARI ", PASSWORD) == "kari"
    assert authenticate(store, "kari", "feil") is None
    assert authenticate(store, "ukjent", PASSWORD) is None
    before = session_stamp(store, "kari")
    store.save_editor("kari", hash_password("et nytt langt passord", n=2**10), now=now, replace=True)
    assert session_stamp(store, "kari") not in (None, before)
    store.remove_editor("kari")
    assert session_stamp(store, "kari") is None
