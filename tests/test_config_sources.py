"""Feed and page sources in schedule.yaml: what loads, and the one-line errors for what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import FeedSource, PageSource, load_settings
from digest.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent

SOURCES = """\
      - type: files
        path: content/
      - type: feed
        url: https://www.ks.no/rss/kultur.xml
        label: KS kultur
        kicker: NYHET
        timeout: 5
      - type: page
        url: https://www.ks.no/fagomrader/samfunnsutvikling/kultur/
        selectors:
          item: .article-list__item
          title: .article-list__title
          link: .article-list__title a
          teaser: .article-list__teaser
          kicker: .article-list__kicker
"""


def schedule(tmp_path: Path, sources: str) -> Path:
    text = (REPO / "schedule.yaml").read_text(encoding="utf-8")
    path = tmp_path / "schedule.yaml"
    path.write_text(text.replace("      - type: files\n        path: content/\n", sources), encoding="utf-8")
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line)


def test_feed_and_page_sources_load(tmp_path):
    digest = load_settings(schedule(tmp_path, SOURCES), environ={}).digest("kultur")

    feed, page = digest.sources[1], digest.sources[2]
    assert isinstance(feed, FeedSource) and feed.timeout == 5 and feed.retries == 2 and feed.kicker == "NYHET"
    assert isinstance(page, PageSource) and page.selectors.item == ".article-list__item"
    assert page.selectors.date is None and digest.min_articles == 1


@pytest.mark.parametrize(("change", "needle", "message"), [
    (("        timeout: 5\n", "        timout: 5\n"), "timout:", "digests.kultur.sources.1.timout: unknown key"),
    (("          item: .article-list__item\n", "          item: 'div[class'\n"), "item: 'div[class'",
     "digests.kultur.sources.2.selectors.item: 'div[class' is not a CSS selector we can use"),
    (("          link: .article-list__title a\n", ""), "selectors:",
     "digests.kultur.sources.2.selectors.link: required key is missing"),
    (("        url: https://www.ks.no/rss/kultur.xml\n", "        url: ks.no/rss\n"), "url: ks.no/rss",
     "digests.kultur.sources.1.url: 'ks.no/rss' is not an absolute http(s) URL"),
    (("      - type: feed\n", "      - type: fed\n"), "type: fed",
     "digests.kultur.sources.1: unknown 'type' 'fed' (known: 'files', 'feed', 'page')"),
    (("        timeout: 5\n", "        timeout: 0\n"), "timeout: 0",
     "digests.kultur.sources.1.timeout: Input should be greater than 0"),
])
def test_bad_sources_name_file_line_and_key(tmp_path, change, needle, message):
    path = schedule(tmp_path, SOURCES.replace(*change))

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    assert str(caught.value).startswith(f"{path}:{line_of(path, needle)}: {message}")
