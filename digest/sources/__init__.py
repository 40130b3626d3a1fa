"""Sources turn the outside world (files, feeds, pages) into Articles."""

from __future__ import annotations

from pathlib import Path

from digest.config import DigestConfig, Settings
from digest.models import Article
from digest.sources.files import load_articles


def collect(settings: Settings, digest: DigestConfig) -> list[Article]:
    """Every article every source of the digest offers now, unfiltered."""
    articles: list[Article] = []
    for source in digest.sources:
        folder: Path = settings.resolve(source.path)
        articles.extend(load_articles(folder, label=source.label or source.path))
    return articles
