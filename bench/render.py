"""How long one edition of ten articles takes to render, stage by stage, and how fast personalisation is.

Rendering happens once per edition; the per-recipient step must stay string work. Run: `make bench` or
`python bench/render.py [--repeat N]`. Prints medians; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest.config import load_settings  # noqa: E402
from digest.message import build_template, recipient_for  # noqa: E402
from digest.render import (  # noqa: E402
    compile_mjml,
    inline_css,
    render,
    render_mjml,
    render_text,
    template_context,
    template_environment,
)
from digest.select import select_explained  # noqa: E402
from digest.sources import collect  # noqa: E402


def median_ms(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--recipients", type=int, default=20000)
    args = parser.parse_args()

    settings = load_settings(ROOT / "schedule.yaml", environ={})
    digest = settings.digest("kultur")
    seed = list(collect(settings, digest))
    # Ten articles: the six of the seed page and four more made from them.
    extra = [replace(a, url=a.url + "del-2/", title=a.title + " (del 2)", published=a.published + timedelta(days=1))
             for a in seed[:4]]
    oslo = ZoneInfo("Europe/Oslo")
    edition = select_explained(seed + extra, digest="kultur", day=date(2019, 7, 1),
                     until=datetime(2019, 7, 1, 23, 59, tzinfo=oslo), previous_until=None, max_articles=10,
                     first_window_days=365).edition
    assert len(edition.articles) == 10

    env = template_environment()
    context = template_context(settings, digest, edition)
    jinja_ms, mjml_source = median_ms(lambda: render_mjml(env, context), args.repeat)
    mrml_ms, raw_html = median_ms(lambda: compile_mjml(mjml_source), args.repeat)
    premailer_ms, html = median_ms(lambda: inline_css(raw_html), args.repeat)
    text_ms, _ = median_ms(lambda: render_text(env, context), args.repeat)
    total_ms, rendered = median_ms(lambda: render(settings, digest, edition, env), args.repeat)

    print(f"One edition of {len(edition.articles)} articles ({len(html.encode()) / 1024:.0f} KB HTML), "
          f"median of {args.repeat}:")
    for label, ms in [("Jinja2 → MJML", jinja_ms), ("MRML → HTML", mrml_ms), ("premailer (inline CSS)", premailer_ms),
                      ("text part", text_ms), ("render() in all", total_ms)]:
        print(f"  {label:<24} {ms:8.2f} ms")

    now = datetime.now(UTC)
    template = build_template(rendered, digest, now=now)
    recipients = [recipient_for(settings, "kultur", digest, template, b"bench-secret", subscriber_id=i,
                                email=f"abonnent{i}@example.org", name=f"Abonnent Nummer {i}")
                  for i in range(args.recipients)]
    start = time.perf_counter()
    size = 0
    for recipient in recipients:
        size += len(template.personalise(recipient))
    substitution = time.perf_counter() - start
    per_us = substitution / len(recipients) * 1e6

    # The baseline a naive sender uses: an EmailMessage built and serialised for every recipient.
    baseline_n = min(300, args.recipients)
    start = time.perf_counter()
    for recipient in recipients[:baseline_n]:
        msg = EmailMessage(policy=policy.SMTP)
        msg["From"], msg["To"], msg["Subject"] = digest.sender.from_, recipient.email, rendered.subject
        msg.set_content(rendered.text.replace(rendered.placeholders.email, recipient.email))
        msg.add_alternative(rendered.html.replace(rendered.placeholders.email, recipient.email), subtype="html")
        msg.as_bytes()
    baseline_us = (time.perf_counter() - start) / baseline_n * 1e6

    print(f"Per recipient ({len(recipients)} recipients, {size / len(recipients) / 1024:.0f} KB each):")
    print(f"  substitution in encoded bytes {per_us:8.1f} µs  ({1e6 / per_us:,.0f} messages/s)")
    print(f"  EmailMessage rebuilt (baseline) {baseline_us:6.0f} µs  ({1e6 / baseline_us:,.0f} messages/s)")
    print(f"  ratio: substitution is {baseline_us / per_us:.0f}× faster than a rebuild")


if __name__ == "__main__":
    main()
