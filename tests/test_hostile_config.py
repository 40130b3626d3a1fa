"""Hostile configuration, CSV and command lines: one line naming file, line and key; exit 1; no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port


def set_in_schedule(project, old: str, new: str) -> int:
    """Replace `old` by `new` in the project's schedule.yaml; the line `new` starts on."""
    path = project / "schedule.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return text[: text.index(new)].count("\n") + 1


def one_error_line(result) -> str:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_key_written_twice_is_an_error_with_both_lines(project, run_cli):
    first = set_in_schedule(project, "    max_articles: 10\n", "    max_articles: 10\n    editors: [a@ks.no]\n") + 1
    second = set_in_schedule(project, "    first_window_days: 365\n",
                             "    first_window_days: 365\n    editors: [b@ks.no]\n") + 1
    line = one_error_line(run_cli("collect", "kultur"))
    assert line == (f"error: schedule.yaml:{second}: invalid YAML: duplicate key 'editors' "
                    f"(first written on line {first})")


BAD_TRANSPORTS = ["smtp://mail.example.org:notaport", "smtp://mail.example.org:99999", "smtp://[::1:25"]


@pytest.mark.parametrize("url", BAD_TRANSPORTS)
def test_a_bad_transport_url_in_the_file_names_line_and_key(project, run_cli, url):
    line_number = set_in_schedule(project, "transport: outbox:outbox", f'transport: "{url}"')
    for command in (["collect", "kultur"], ["send", "kultur", "--dry-run"], ["run", "--once"]):
        line = one_error_line(run_cli(*command))
        assert line.startswith(f"error: schedule.yaml:{line_number}: transport: '{url}'"), line


@pytest.mark.parametrize("url", BAD_TRANSPORTS)
def test_a_bad_transport_url_in_the_environment_names_the_variable(project, run_cli, monkeypatch, url):
    monkeypatch.setenv("DIGEST_TRANSPORT", url)
    for command in (["send", "kultur", "--dry-run"], ["run", "--once"]):
        line = one_error_line(run_cli(*command))
        assert line.startswith(f"error: DIGEST_TRANSPORT: transport: '{url}'"), line


def test_a_csv_field_over_the_csv_modules_limit(project, run_cli):
    (project / "stor.csv").write_text('email,name\nkari@example.org,"' + "x" * 200_000 + '"\nola@example.org,Ola\n',
                                      encoding="utf-8")
    line = one_error_line(run_cli("subscribers", "import", "stor.csv"))
    assert line == ("error: stor.csv:2: a field is longer than 131 072 characters (is a closing quote missing?); "
                    "nothing was imported")
    assert "example.org" not in run_cli("subscribers", "list").stdout


def test_an_impossible_date_in_the_front_matter_is_a_warning_with_line_and_field(project, run_cli):
    (project / "content" / "zz-dato.md").write_text(
        "---\ntitle: Dato\nurl: https://www.ks.no/d/\npublished: 2019-13-45T99:00:00+02:00\n---\nTekst.\n",
        encoding="utf-8")
    result = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "p.html")
    assert result.exit_code == 0 and "Traceback" not in result.stderr
    assert ("warning: files content/ (content/zz-dato.md:4): failed: field 'published': "
            "'2019-13-45T99:00:00+02:00' is not an ISO 8601 date and time") in result.stderr


# -- digest serve: start-up problems in one line, before "Serving on" (a real process, as people run it) ----------

def serve(project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "digest", "serve", *args], cwd=project, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "DIGEST_SECRET": "s",
                                                      "PYTHONPATH": str(REPO)})


def assert_one_line_before_serving(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Serving on" not in result.stderr + result.stdout
    assert result.stderr.strip() == expected


def test_serve_refuses_a_port_out_of_range(project):
    assert_one_line_before_serving(serve(project, "--port", "99999"),
                                   "error: --port 99999: a port is a number from 1 to 65535")


def test_serve_says_when_the_port_is_in_use(project):
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = serve(project, "--port", str(port))
    assert_one_line_before_serving(
        result, f"error: cannot listen on 127.0.0.1:{port}: the port is in use (is `digest serve` running already?)")


def test_serve_refuses_a_host_it_cannot_resolve(project):
    assert_one_line_before_serving(
        serve(project, "--host", "no-such-host.invalid"),
        "error: --host 'no-such-host.invalid': not an address or a host name this machine can resolve")


def test_a_trusted_proxy_that_is_no_address_names_line_and_key(project, run_cli):
    line_number = set_in_schedule(project, "transport: outbox:outbox", "trusted_proxies: [127.0.0.1, nginx]")
    line = one_error_line(run_cli("collect", "kultur"))
    assert line == (f"error: schedule.yaml:{line_number}: trusted_proxies.1: 'nginx' is not an IP address or "
                    "network (e.g. 127.0.0.1 or 10.0.0.0/8)")
