"""The numbers as pictures: SVG charts drawn on the server with pygal, and the same data as rows for the tables
and CSV files beside them (a chart is never the only way to read a figure). Pure: stats in, text out."""

from __future__ import annotations

from collections.abc import Sequence

import pygal
from babel.dates import format_date
from pygal.style import Style

from digest.stats import DigestStats, EditionStats, WeekStats

# Colours that keep 3:1 against white and each other apart for the common colour-vision deficiencies (Okabe-Ito).
STYLE = Style(
    background="#ffffff", plot_background="#ffffff", foreground="#1a1a1a", foreground_strong="#1a1a1a",
    foreground_subtle="#4a4a4a", opacity=".9", opacity_hover="1",
    colors=("#0072B2", "#D55E00", "#CC79A7", "#009E73", "#8a6d00"),
    font_family="-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
    label_font_size=13, major_label_font_size=13, legend_font_size=13, title_font_size=16,
)
# Charts show the last this many editions (the table and CSV hold every one).
CHART_EDITIONS = 12

EDITION_COLUMNS = ("Utgave", "Dato", "Mottakere", "Sendt", "Utsatt", "Feilet", "Venter", "Avvist (bounce)",
                   "Klager", "Avmeldt")
WEEK_COLUMNS = ("Uke", "Fra", "Aktive", "Nye", "Sluttet")


def short_date(item: EditionStats, locale: str = "nb_NO") -> str:
    """`1. juli 2019`, `7. jan. 2019`: Babel's short month in the digest's language."""
    return format_date(item.date, "d. MMM y", locale=locale)


def edition_rows(stats: DigestStats, locale: str = "nb_NO") -> list[tuple[object, ...]]:
    return [(item.edition, short_date(item, locale), item.audience, item.sent, item.deferred, item.failed,
             item.pending, item.bounced, item.complaints, item.unsubscribes) for item in stats.editions]


def week_rows(stats: DigestStats, locale: str = "nb_NO") -> list[tuple[object, ...]]:
    return [(item.week, format_date(item.starts, "d. MMM y", locale=locale), item.active, item.joined, item.left)
            for item in stats.weeks]


def _config(title: str) -> dict[str, object]:
    # No scripts (the desk's CSP allows none, and an <img> runs none) and no XML declaration (the SVG is served
    # as image/svg+xml on its own).
    return {"title": title, "style": STYLE, "js": [], "disable_xml_declaration": True, "width": 720, "height": 360,
            "legend_at_bottom": True, "legend_at_bottom_columns": 4, "print_values": False,
            "show_minor_y_labels": False, "min_scale": 2, "max_scale": 8, "explicit_size": True}


def editions_chart(stats: DigestStats, locale: str = "nb_NO") -> str:
    """Per edition (oldest left): sent, and who bounced, complained or left within 7 days."""
    shown: Sequence[EditionStats] = list(reversed(stats.editions[:CHART_EDITIONS]))
    chart = pygal.Bar(**_config(f"{stats.title}: de siste utgavene"))
    chart.x_labels = [short_date(item, locale) for item in shown]
    chart.add("Sendt", [item.sent for item in shown])
    chart.add("Avvist (bounce)", [item.bounced for item in shown])
    chart.add("Klager", [item.complaints for item in shown])
    chart.add("Avmeldt", [item.unsubscribes for item in shown])
    if not shown:
        chart.no_data_text = "Ingen utgaver er sendt ennå"
    return chart.render(is_unicode=True)


def list_chart(stats: DigestStats) -> str:
    """The list per ISO week: active subscribers at the week's end, and who joined and left in it."""
    weeks: Sequence[WeekStats] = stats.weeks
    chart = pygal.Line(**_config(f"{stats.title}: abonnenter per uke"), dots_size=3, x_label_rotation=30)
    chart.x_labels = [item.week for item in weeks]
    chart.x_labels_major_every = max(1, len(weeks) // 8)
    chart.show_minor_x_labels = False
    chart.add("Aktive", [item.active for item in weeks])
    chart.add("Nye", [item.joined for item in weeks])
    chart.add("Sluttet", [item.left for item in weeks])
    return chart.render(is_unicode=True)
