"""Do the links of an e-mail answer? Every address is tried at once (a few at a time per run), each with a deadline.

A GET whose body is never read (many servers answer HEAD wrongly or not at all), redirects followed. The verdict is
a `digest.checks.Check`, like the other checks of the desk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from digest.checks import Check, Links
from digest.sources.fetch import MAX_REDIRECTS

CONCURRENCY = 10
TIMEOUT_SECONDS = 8.0
# Sites that turn robots away answer these; the page is probably there for a person with a browser.
_REFUSED = {401, 403, 429}


@dataclass(frozen=True, kw_only=True)
class LinkResult:
    url: str
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and self.status < 400

    @property
    def refused(self) -> bool:
        return self.status in _REFUSED

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.url}: {self.error}"
        return f"{self.url}: svarte {self.status}"


def _seconds(value: float) -> str:
    return f"{value:g}".replace(".", ",")


async def _probe(client: httpx.AsyncClient, url: str, timeout: float, gate: asyncio.Semaphore) -> LinkResult:
    async with gate:
        try:
            async with asyncio.timeout(timeout):
                async with client.stream("GET", url) as response:
                    return LinkResult(url=url, status=response.status_code)
        except (TimeoutError, httpx.TimeoutException):
            return LinkResult(url=url, error=f"svarte ikke innen {_seconds(timeout)} sekunder")
        except httpx.TooManyRedirects:
            return LinkResult(url=url, error=f"for mange omdirigeringer (over {MAX_REDIRECTS})")
        except httpx.HTTPError as err:
            return LinkResult(url=url, error=f"kunne ikke nås ({type(err).__name__})")


async def probe_all(urls: Sequence[str], *, agent: str, timeout: float = TIMEOUT_SECONDS,
                    concurrency: int = CONCURRENCY) -> list[LinkResult]:
    """One result per URL, in the same order."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout,
                                 headers={"User-Agent": agent}) as client:
        return list(await asyncio.gather(*(_probe(client, url, timeout, gate) for url in urls)))


def check_links(links: Links, *, agent: str, timeout: float = TIMEOUT_SECONDS) -> Check:
    """The desk's verdict on the e-mail's links and images (runs its own event loop: call it from a thread)."""
    urls = links.all
    title = "Lenker som svarer"
    if not urls:
        return Check(key="links", title=title, verdict="ok", message="E-posten har ingen lenker å sjekke.")
    results = asyncio.run(probe_all(urls, agent=agent, timeout=timeout))
    broken = [result for result in results if not result.ok and not result.refused]
    refused = [result for result in results if result.refused]
    checked = f"Sjekket {len(urls)} adresser samtidig (lenker og bilder, {_seconds(timeout)} sekunder hver)."
    if broken:
        count = "Én adresse" if len(broken) == 1 else f"{len(broken)} adresser"
        return Check(key="links", title=title, verdict="fail",
                     message=f"{count} svarer ikke eller svarer med feil. {checked}",
                     details=tuple(result.describe() for result in broken + refused))
    if refused:
        return Check(key="links", title=title, verdict="warn",
                     message=f"{len(refused)} adresser nektet oss (401, 403 eller 429); de virker kanskje i en "
                             f"nettleser. {checked}",
                     details=tuple(result.describe() for result in refused))
    return Check(key="links", title=title, verdict="ok", message=f"Alle svarer. {checked}")
