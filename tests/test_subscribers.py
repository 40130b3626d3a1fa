"""Importing and listing subscribers: validated addresses, merged duplicates, all-or-nothing on bad rows."""

from __future__ import annotations


def test_import_and_list(project, run_cli):
    result = run_cli("subscribers", "import", "examples/subscribers.csv")
    assert result.exit_code == 0
    assert "3 new, 0 updated, 0 unchanged" in result.stdout
    listing = run_cli("subscribers", "list")
    assert "bjorn.aase@example.org" in listing.stdout and "Bjørn Åse" in listing.stdout
    assert "3 subscribers" in listing.stdout


def test_duplicates_are_merged_and_reimport_changes_nothing(project, run_cli):
    (project / "list.csv").write_text("email,name\nkari@example.org,Kari\nKARI@example.org,Kari N.\n"
                                      "per@example.org,\n", encoding="utf-8")
    first = run_cli("subscribers", "import", "list.csv")
    assert "2 new" in first.stdout and "1 duplicate rows merged" in first.stdout
    again = run_cli("subscribers", "import", "list.csv")
    assert "0 new, 0 updated, 2 unchanged" in again.stdout
    assert run_cli("subscribers", "list").stdout.count("@example.org") == 2


def test_a_bad_row_imports_nothing_and_names_its_line(project, run_cli):
    (project / "list.csv").write_text("email,name\nkari@example.org,Kari\nikke-en-adresse,Ola\n"
                                      "per@example.org,Per\n", encoding="utf-8")
    result = run_cli("subscribers", "import", "list.csv")
    assert result.exit_code == 1
    assert "list.csv:3:" in result.stderr and "ikke-en-adresse" in result.stderr
    assert "nothing was imported" in result.stderr
    assert "0 subscribers" in run_cli("subscribers", "list").stdout


def test_header_without_email_column(project, run_cli):
    (project / "list.csv").write_text("epost,navn\nkari@example.org,Kari\n", encoding="utf-8")
    result = run_cli("subscribers", "import", "list.csv")
    assert result.exit_code == 1
    assert "list.csv:1: the header must have the columns email,name" in result.stderr


def test_missing_file(project, run_cli):
    result = run_cli("subscribers", "import", "finnes-ikke.csv")
    assert result.exit_code == 1 and "finnes-ikke.csv" in result.stderr and "not found" in result.stderr


def test_a_folder_instead_of_a_file_is_one_line_not_a_traceback(project, run_cli):
    (project / "lister").mkdir()
    result = run_cli("subscribers", "import", "lister")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: lister: cannot read the file:") and "Traceback" not in result.stderr
    assert "nothing was imported" in result.stderr


def test_domain_with_aeoeaa_is_stored_in_ascii_form():
    from digest.subscribers import normalise_address

    assert normalise_address(" kari@bø.kommune.no ") == "kari@xn--b-5ga.kommune.no"


def test_reimport_adds_new_digests_to_those_who_chose_theirs(tmp_path):
    from digest.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    rows = [("kari@example.org", "Kari"), ("per@example.org", "Per")]
    store.import_subscribers(rows, source="import:a.csv", digests=["kultur"])
    report = store.import_subscribers(rows, source="import:b.csv", digests=["kultur", "idrett"])
    assert (report.added, report.updated, report.unchanged) == (0, 2, 0)
    exported = store.export_address("kari@example.org")
    assert exported["subscriber"]["digests"] == ["idrett", "kultur"]
    assert [c["digests"] for c in exported["consents"]] == [["kultur"], ["idrett"]]
    again = store.import_subscribers(rows, source="import:b.csv", digests=["kultur", "idrett"])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 2)
