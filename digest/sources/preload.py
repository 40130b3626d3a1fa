"""Imported once by the parsers' forkserver (see isolate.py): everything a parse needs, loaded and warmed up.

Each parse is a child forked from that process, so what is loaded here is paid for once, not per source: the
parsers themselves, and dateparser with its Norwegian and English data (loading those on first use costs a second).
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import digest.sources.feeds
import digest.sources.pages  # noqa: F401
from digest.sources.normalise import parse_date

parse_date("Publisert 14. juni 2019 kl. 09.30", ZoneInfo("Europe/Oslo"))
