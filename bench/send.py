"""How fast `digest send` is on this machine, against Postfix's smtp-sink, and what it costs in memory.

Not a test: it prints figures and the ratios the sender is held to (issue 5), from one run:
  - our sender at pool sizes 1 and 8, the naive baseline (smtplib, a new EmailMessage and connection per message)
    and Postfix's smtp-source at 1 and 8 reused sessions (the practical ceiling), all against one smtp-sink;
  - the same with `smtp-sink -w 0.05` (a relay that takes 50 ms per message), where concurrency decides;
  - DKIM on and off; per-recipient preparation against building an EmailMessage per recipient;
  - peak RSS of `digest send --dry-run` over a generated list of 100 000 subscribers.
Each throughput is the best of --repeat runs: the machine may be shared, and the best run is the least disturbed.

    .venv/bin/python bench/send.py [--messages 5000] [--repeat 3] [--rss-subscribers 100000]

Needs smtp-sink and smtp-source (Debian package `postfix`); installs it, unconfigured, when missing and allowed
(root). The Postfix daemon itself is never started.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.app.editions import prepare  # noqa: E402
from digest.app.sending import send_edition  # noqa: E402
from digest.config import Settings, load_settings  # noqa: E402
from digest.message import MessageTemplate, build_template, fill, fill_text, recipient_for  # noqa: E402
from digest.models import RenderedEdition  # noqa: E402
from digest.render import render  # noqa: E402
from digest.store import Store  # noqa: E402
from digest.transports import transport_from_url  # noqa: E402

AS_OF = date(2019, 7, 1)
SECRET = b"bench-secret"


# -- Postfix's tools ----------------------------------------------------------------------------------------------
def ensure_postfix_tools() -> None:
    if shutil.which("smtp-sink") and shutil.which("smtp-source"):
        return
    if os.geteuid() != 0:
        sys.exit("smtp-sink/smtp-source are missing: install the Debian package 'postfix' (No configuration)")
    print("Installing postfix (No configuration) for smtp-sink and smtp-source …", flush=True)
    subprocess.run(["debconf-set-selections"], input=b"postfix postfix/main_mailer_type select No configuration\n",
                   check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "postfix"], check=True, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def smtp_sink(delay: float | None = None) -> Iterator[int]:
    port = free_port()
    command = ["smtp-sink"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # smtp-sink refuses to run as root
    if delay:
        command += ["-w", str(delay)]
    command += [f"127.0.0.1:{port}", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.02)
        else:
            raise RuntimeError(f"smtp-sink did not start: {process.stderr.read().decode() if process.stderr else ''}")
        yield port
    finally:
        process.terminate()
        process.wait()


# A relay that takes `delay` seconds per message. smtp-sink's -w counts whole seconds (atoi), so the 50 ms relay is
# aiosmtpd in a process of its own; it tops out near 250 msg/s, far above what 50 ms per message allows here.
SLOW_RELAY = """
import asyncio, sys, time
from aiosmtpd.controller import Controller

class Slow:
    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(float(sys.argv[2]))
        return "250 2.0.0 Ok"

Controller(Slow(), hostname="127.0.0.1", port=int(sys.argv[1])).start()
print("ready", flush=True)
time.sleep(86400)
"""


@contextlib.contextmanager
def slow_relay(delay: float) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", SLOW_RELAY, str(port), str(delay)], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        yield port
    finally:
        process.terminate()
        process.wait()


def smtp_source(port: int, message_file: Path, messages: int, sessions: int) -> float:
    started = time.perf_counter()
    subprocess.run(["smtp-source", "-s", str(sessions), "-d", "-m", str(messages), "-F", str(message_file),
                    "-f", "kultur@ks.no", "-t", "abonnent@example.org", f"127.0.0.1:{port}"], check=True)
    return messages / (time.perf_counter() - started)


# -- the edition and a generated list -------------------------------------------------------------------------------
@dataclass
class Edition:
    settings: Settings
    rendered: RenderedEdition
    template: MessageTemplate


def kultur_edition(settings: Settings) -> Edition:
    store = Store.open("sqlite://")
    edition = prepare(settings, store, "kultur", as_of=AS_OF, now=datetime.now(UTC)).edition
    digest = settings.digest("kultur")
    rendered = render(settings, digest, edition)
    return Edition(settings, rendered, build_template(rendered, digest, now=datetime.now(UTC)))


def subscriber_db(path: Path, count: int) -> Path:
    """A state database holding `count` active subscribers (and nothing sent yet)."""
    Store.open(f"sqlite:///{path}").close()
    now = datetime.now(UTC).isoformat(sep=" ")
    db = sqlite3.connect(path)
    with db:
        db.executemany("INSERT INTO subscribers (email, name, status, source, created_at) VALUES (?, ?, ?, ?, ?)",
                       ((f"abonnent{i:06d}@example.org", f"Abonnent {i}", "active", "bench", now)
                        for i in range(count)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the copies taken per run must hold the rows
    db.close()
    return path


# -- the measurements -------------------------------------------------------------------------------------------
def our_sender(settings: Settings, template_db: Path, work: Path, port: int, pool_size: int) -> float:
    """Messages per second of `send_edition` over a fresh copy of the list (ledger, personalisation and all)."""
    db = work / f"run-{time.monotonic_ns()}.db"
    shutil.copy(template_db, db)
    sending = settings.sending.model_copy(update={"pool_size": pool_size})
    run_settings = settings.model_copy(update={"sending": sending})
    store = Store.open(f"sqlite:///{db}")
    try:
        transport = transport_from_url(f"smtp://127.0.0.1:{port}", root=settings.root)
        report = send_edition(run_settings, store, transport, "kultur", as_of=AS_OF, now=datetime.now(UTC))
    finally:
        store.close()
    if report.sent != report.remaining_at_start or report.failed or report.deferred:
        raise RuntimeError(f"the bench run did not send everything: {report}")
    return report.sent / report.elapsed


def naive_message(edition: Edition, number: int) -> EmailMessage:
    """What a simple sender does per recipient: substitute into the rendered HTML and text, build a new message."""
    rendered, digest = edition.rendered, edition.settings.digest("kultur")
    recipient = recipient_for(edition.settings, "kultur", digest, edition.template, SECRET, subscriber_id=number,
                              email=f"abonnent{number:06d}@example.org", name=f"Abonnent {number}")
    values = {"greeting": f"Hei, {recipient.name}!", "email": recipient.email,
              "unsubscribe_url": recipient.unsubscribe_url, "preferences_url": recipient.preferences_url}
    text = fill_text(rendered.text, rendered.placeholders, values)
    page = fill(rendered.html, rendered.placeholders, values)
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = digest.sender.from_
    msg["To"] = formataddr((recipient.name, recipient.email))
    msg["Subject"] = rendered.subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = recipient.message_id
    msg["List-Unsubscribe"] = f"<{recipient.unsubscribe_url}>, <{recipient.unsubscribe_mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text)
    msg.add_alternative(page, subtype="html")
    return msg


def naive_sender(edition: Edition, port: int, messages: int) -> float:
    started = time.perf_counter()
    for number in range(messages):
        msg = naive_message(edition, number)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)
    return messages / (time.perf_counter() - started)


def per_message_seconds(work: Callable[[int], object], count: int) -> float:
    started = time.perf_counter()
    for number in range(count):
        work(number)
    return (time.perf_counter() - started) / count


def our_preparation(edition: Edition) -> Callable[[int], object]:
    settings, digest, template = edition.settings, edition.settings.digest("kultur"), edition.template

    def prepare(number: int) -> bytes:
        recipient = recipient_for(settings, "kultur", digest, template, SECRET, subscriber_id=number,
                                  email=f"abonnent{number:06d}@example.org", name=f"Abonnent {number}")
        return template.personalise_for_smtp(recipient)[1]  # encoded, dot-stuffed: ready for DATA

    return prepare


def dry_run_peak_rss(settings_path: Path, db: Path) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, last output line) of `digest send --dry-run` in a child process."""
    env = {**os.environ, "DIGEST_DB_URL": f"sqlite:///{db}", "DIGEST_SECRET": SECRET.decode(),
           "DIGEST_CONFIG": str(settings_path)}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "digest", "send", "kultur", "--as-of", AS_OF.isoformat(),
                                "--dry-run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"dry run failed ({process.returncode}): {output}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started, output.strip().splitlines()[0]


def best(label: str, repeat: int, measure: Callable[[], float]) -> float:
    rates = [measure() for _ in range(repeat)]
    digits = 0 if max(rates) >= 100 else 2
    print(f"  {label:<46} {max(rates):>8.{digits}f} msg/s   (runs: {', '.join(f'{r:.{digits}f}' for r in rates)})",
          flush=True)
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000, help="messages per fast run (default 5000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best counts (default 3)")
    parser.add_argument("--rss-subscribers", type=int, default=100_000, help="list size for the RSS check")
    args = parser.parse_args()
    ensure_postfix_tools()
    os.environ["DIGEST_SECRET"] = SECRET.decode()
    for variable in ("DIGEST_DKIM_KEY_FILE", "DIGEST_DKIM_SELECTOR", "DIGEST_DKIM_DOMAIN", "DIGEST_TRANSPORT"):
        os.environ.pop(variable, None)

    settings_path = REPO / "schedule.yaml"
    settings = load_settings(settings_path)
    edition = kultur_edition(settings)
    sample = our_preparation(edition)(0)
    n, slow_n = args.messages, max(100, args.messages // 25)  # the naive baseline is slow: fewer messages
    print(f"kulturdigest send bench: {os.cpu_count()} CPUs, Kultur edition {AS_OF}, {len(sample) / 1024:.1f} KB "
          f"per message after personalisation, {n} messages per fast run, best of {args.repeat}\n")

    with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
        work = Path(tmp)
        message_file = work / "message.eml"
        message_file.write_bytes(sample.replace(b"\r\n", b"\n"))  # smtp-source adds CRLF (and stuffs dots) itself
        lists = {count: subscriber_db(work / f"list-{count}.db", count) for count in {n, 400, 60, 32, 4}}
        key_file = work / "dkim.pem"
        write_dkim_key(key_file)

        print("smtp-sink (answers at once):")
        with smtp_sink() as port:
            source_1 = best("smtp-source -s 1 -d", args.repeat, lambda: smtp_source(port, message_file, n, 1))
            source_8 = best("smtp-source -s 8 -d", args.repeat, lambda: smtp_source(port, message_file, 2 * n, 8))
            ours_1 = best("digest send, pool 1", args.repeat,
                          lambda: our_sender(settings, lists[n], work, port, 1))
            ours_8 = best("digest send, pool 8", args.repeat,
                          lambda: our_sender(settings, lists[n], work, port, 8))
            with dkim_env(key_file):
                dkim_1 = best("digest send, pool 1, DKIM on", args.repeat,
                              lambda: our_sender(settings, lists[n], work, port, 1))
                dkim_8 = best("digest send, pool 8, DKIM on", args.repeat,
                              lambda: our_sender(settings, lists[n], work, port, 8))
            naive = best("naive: smtplib, new EmailMessage + connection", args.repeat,
                         lambda: naive_sender(edition, port, slow_n))

        print("\na relay that takes 50 ms per message (aiosmtpd; smtp-sink's -w takes whole seconds):")
        with slow_relay(0.05) as port:
            slow_1 = best("digest send, pool 1", 1, lambda: our_sender(settings, lists[60], work, port, 1))
            slow_8 = best("digest send, pool 8", 1, lambda: our_sender(settings, lists[400], work, port, 8))
        print("\nsmtp-sink -w 1 (1 s per message):")
        with smtp_sink(delay=1) as port:
            sink_slow_1 = best("digest send, pool 1", 1, lambda: our_sender(settings, lists[4], work, port, 1))
            sink_slow_8 = best("digest send, pool 8", 1, lambda: our_sender(settings, lists[32], work, port, 8))
            slow_source_8 = best("smtp-source -s 8 -d", 1, lambda: smtp_source(port, message_file, 32, 8))

        print("\nper-recipient preparation (personalised, encoded bytes ready for DATA):")
        ours_prep = min(per_message_seconds(our_preparation(edition), 20_000) for _ in range(args.repeat))
        naive_prep = min(per_message_seconds(lambda i: naive_message(edition, i).as_bytes(), 500)
                         for _ in range(args.repeat))
        import dkim

        dkimpy_sign = per_message_seconds(lambda i: dkim.sign(sample, b"bench", b"ks.no", key_file.read_bytes()), 20)
        print(f"  ours (template substitution)                   {ours_prep * 1e6:8.1f} µs  ({1 / ours_prep:,.0f}/s)")
        print(f"  EmailMessage per recipient                     {naive_prep * 1e6:8.1f} µs  ({1 / naive_prep:,.0f}/s)")
        print(f"  for scale: dkimpy's own dkim.sign             {dkimpy_sign * 1e6:8.1f} µs  (not used)")

        print(f"\nmemory: digest send --dry-run over {args.rss_subscribers:,} generated subscribers:")
        big = subscriber_db(work / "big.db", args.rss_subscribers)
        rss, seconds, line = dry_run_peak_rss(settings_path, big)
        print(f"  peak RSS {rss:.0f} MB in {seconds:.0f} s — {line}")

    print("\nratios (target):")
    checks = [
        ("pool 1 / smtp-source -s 1 -d", ours_1 / source_1, 0.55),
        ("pool 8 / smtp-source -s 8 -d", ours_8 / source_8, 0.40),
        ("50 ms relay: pool 8 / pool 1", slow_8 / slow_1, 6.0),
        ("smtp-sink -w 1: pool 8 / pool 1", sink_slow_8 / sink_slow_1, 6.0),
        ("DKIM on / off, pool 1", dkim_1 / ours_1, 0.5),
        ("DKIM on / off, pool 8", dkim_8 / ours_8, 0.5),
        ("preparation: EmailMessage time / ours", naive_prep / ours_prep, 20.0),
    ]
    for label, value, target in checks:
        print(f"  {label:<40} {value:7.2f}  (≥ {target:g})  {'ok' if value >= target else 'MISSED'}")
    print(f"  {'peak RSS, 100 000 dry run (MB)':<40} {rss:7.0f}  (< 200)  {'ok' if rss < 200 else 'MISSED'}"
          if args.rss_subscribers == 100_000 else f"  peak RSS for {args.rss_subscribers}: {rss:.0f} MB")
    print(f"  for scale: pool 8 / naive baseline           {ours_8 / naive:7.1f}×;  "
          f"smtp-sink -w 1, smtp-source -s 8 -d: {slow_source_8:.1f} msg/s")


def write_dkim_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))


@contextlib.contextmanager
def dkim_env(key_file: Path) -> Iterator[None]:
    os.environ.update(DIGEST_DKIM_KEY_FILE=str(key_file), DIGEST_DKIM_SELECTOR="bench")
    try:
        yield
    finally:
        os.environ.pop("DIGEST_DKIM_KEY_FILE", None)
        os.environ.pop("DIGEST_DKIM_SELECTOR", None)


if __name__ == "__main__":
    main()
