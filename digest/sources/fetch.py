"""Fetching many URLs at once over HTTP: a deadline per source, a size cap, retries, conditional GET.

The only module of kulturdigest that talks HTTP. It knows nothing of feeds, pages or the store: it takes requests
(with the validators of the last answer) and gives back bodies, "not modified", or a `FetchError` per URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import monotonic
from typing import Any, TypeVar

import httpx

from digest import __version__
from digest.errors import SourceError

# First pause before a retry; it doubles each time, and never eats more than a quarter of the time left.
BACKOFF_SECONDS = 0.5
MAX_REDIRECTS = 5

T = TypeVar("T")


class FetchError(SourceError):
    """A URL gave us nothing usable: no answer in time, an HTTP error, too large, a broken connection."""

    def __init__(self, message: str, *, url: str, status: int | None = None, attempts: int = 1) -> None:
        self.status = status
        self.attempts = attempts
        super().__init__(message, url=url)


@dataclass(frozen=True, kw_only=True)
class FetchRequest:
    url: str
    # The whole budget for this URL, retries and pauses included.
    timeout: float
    retries: int = 2
    max_bytes: int = 5_000_000
    # Validators of the last full answer: with them the server may answer 304 Not Modified.
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, kw_only=True)
class Fetched:
    url: str
    final_url: str  # after redirects: relative links are resolved against this
    status: int  # 200 (or another 2xx) or 304
    body: bytes  # empty for a 304
    content_type: str | None
    etag: str | None
    last_modified: str | None
    attempts: int
    seconds: float

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def _unchanged(_index: int, fetched: Fetched) -> Any:
    return fetched


def user_agent(contact_url: str) -> str:
    """An honest User-Agent: who we are, and where a site owner can read about us."""
    return f"kulturdigest/{__version__} (+{contact_url})"


def fetch_all(requests: Sequence[FetchRequest], *, agent: str,
              then: Callable[[int, Fetched], T] = _unchanged) -> list[T | FetchError]:
    """Fetch every request concurrently; the result list matches the request list, one outcome each.

    `then(index, answer)` runs on each answer as soon as it arrives (parsing a fast feed while a slow one is still
    on its way), in a worker thread and within the source's timeout (which covers fetching and reading together),
    so the wall time stays close to the slowest source and never much beyond the largest timeout. Runs its own
    event loop (in a helper thread when the caller already runs one), so callers stay synchronous.
    """
    if not requests:
        return []
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fetch_all_async(requests, agent=agent, then=then))
    # Called from async code (e.g. a web handler): asyncio.run cannot nest, so give it a thread of its own.
    outcome: list[list[T | FetchError]] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(asyncio.run(fetch_all_async(requests, agent=agent, then=then)))
        except BaseException as err:  # re-raised in the caller's thread below
            failure.append(err)

    thread = threading.Thread(target=work, name="kulturdigest-fetch")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


async def fetch_all_async(requests: Sequence[FetchRequest], *, agent: str,
                          then: Callable[[int, Fetched], T] = _unchanged) -> list[T | FetchError]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    async with httpx.AsyncClient(
        headers={"User-Agent": agent, "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        limits=limits,
        # The per-attempt deadline below is the real limit; httpx's own timeouts only catch a silent socket sooner.
        timeout=httpx.Timeout(60.0),
    ) as client:

        async def one(index: int, request: FetchRequest) -> T | FetchError:
            started = monotonic()
            result = await fetch_one(client, request)
            if isinstance(result, FetchError):
                return result
            return await read_in_worker(then, index, result, request=request,
                                        left=request.timeout - (monotonic() - started))

        return list(await asyncio.gather(*(one(index, request) for index, request in enumerate(requests))))


async def read_in_worker(then: Callable[[int, Fetched], T], index: int, fetched: Fetched, *,
                         request: FetchRequest, left: float) -> T | FetchError:
    """`then(index, fetched)` in a thread of its own, within what is left of the source's budget.

    Parsing runs off the event loop, so a source that is slow to parse never holds up the fetching of the others;
    one that runs over its time is that source's failure alone. The thread cannot be killed: it is a daemon, its
    late answer is dropped, and the parsers check the deadline between items, so it stops soon after.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if answer.done():  # the deadline passed first
            return
        if ok:
            answer.set_result(value)
        else:
            answer.set_exception(value)

    def work() -> None:
        try:
            outcome: tuple[bool, Any] = (True, then(index, fetched))
        except BaseException as err:  # handed to the awaiting task, which re-raises it
            outcome = (False, err)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the collection ended without us
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name=f"kulturdigest-read-{index}", daemon=True).start()
    try:
        async with asyncio.timeout(max(left, 0.0)):
            return await answer
    except TimeoutError:
        return FetchError(f"not read within {_seconds(request.timeout)} (fetching and reading together)",
                          url=request.url, attempts=fetched.attempts)


async def fetch_one(client: httpx.AsyncClient, request: FetchRequest) -> Fetched | FetchError:
    """One URL within its budget: retry 5xx, 429, timeouts and broken connections with growing pauses."""
    started = monotonic()
    deadline = started + request.timeout
    attempts_allowed = request.retries + 1
    last_error: FetchError | None = None
    for attempt in range(1, attempts_allowed + 1):
        left = deadline - monotonic()
        if left <= 0:
            break
        # Each attempt gets an equal share of what is left, so a first attempt that hangs leaves time to retry.
        share = left / (attempts_allowed - attempt + 1)
        retry_after: float | None = None
        try:
            async with asyncio.timeout(share):
                result = await _get(client, request, attempt=attempt, started=started)
            return result
        except (TimeoutError, httpx.TimeoutException):
            last_error = FetchError(f"no answer within {_seconds(request.timeout)}", url=request.url,
                                    attempts=attempt)
        except _RetryableStatus as err:
            last_error = FetchError(err.message, url=request.url, status=err.status, attempts=attempt)
            retry_after = err.retry_after
        except httpx.TransportError as err:
            last_error = FetchError(_transport_problem(err), url=request.url, attempts=attempt)
        except FetchError as err:  # final: 404, too large, too many redirects
            return err
        if attempt == attempts_allowed:
            break
        pause = min(BACKOFF_SECONDS * 2 ** (attempt - 1), (deadline - monotonic()) / 4)
        if retry_after is not None and retry_after <= deadline - monotonic() - 0.5:
            pause = max(pause, retry_after)
        if pause > 0:
            # A little jitter keeps many digests from hammering a recovering server in step.
            await asyncio.sleep(pause * random.uniform(0.9, 1.1))
    if last_error is None:  # the budget was gone before the first attempt (a timeout of a few milliseconds)
        return FetchError(f"no answer within {_seconds(request.timeout)}", url=request.url)
    if last_error.attempts == 1:
        return last_error
    return FetchError(f"{last_error} ({last_error.attempts} attempts)", url=request.url, status=last_error.status,
                      attempts=last_error.attempts)


class _RetryableStatus(Exception):
    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        self.message = message
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


async def _get(client: httpx.AsyncClient, request: FetchRequest, *, attempt: int, started: float) -> Fetched:
    headers: dict[str, str] = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    try:
        async with client.stream("GET", request.url, headers=headers) as response:
            status = response.status_code
            if status == 304:
                return _fetched(request, response, b"", attempt=attempt, started=started)
            if status >= 500 or status == 429:
                raise _RetryableStatus(f"the server answered HTTP {status} {response.reason_phrase}".rstrip(),
                                       status, _retry_after(response.headers.get("Retry-After")))
            if status >= 300:
                raise FetchError(f"the server answered HTTP {status} {response.reason_phrase}".rstrip(),
                                 url=request.url, status=status, attempts=attempt)
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > request.max_bytes:
                raise _too_large(request, attempt)
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                # Counted after decompression: a small gzip that unpacks to gigabytes stops here too.
                if len(body) > request.max_bytes:
                    raise _too_large(request, attempt)
            return _fetched(request, response, bytes(body), attempt=attempt, started=started)
    except httpx.TooManyRedirects:
        raise FetchError(f"more than {MAX_REDIRECTS} redirects", url=request.url, attempts=attempt) from None
    except httpx.InvalidURL as err:
        raise FetchError(f"invalid URL: {err}", url=request.url, attempts=attempt) from None
    except httpx.DecodingError as err:
        raise FetchError(f"the body could not be decoded: {err}", url=request.url, attempts=attempt) from None


def _fetched(request: FetchRequest, response: httpx.Response, body: bytes, *, attempt: int,
             started: float) -> Fetched:
    return Fetched(
        url=request.url,
        final_url=str(response.url),
        status=response.status_code,
        body=body,
        content_type=response.headers.get("Content-Type"),
        etag=response.headers.get("ETag") or (request.etag if response.status_code == 304 else None),
        last_modified=response.headers.get("Last-Modified")
        or (request.last_modified if response.status_code == 304 else None),
        attempts=attempt,
        seconds=monotonic() - started,
    )


def _too_large(request: FetchRequest, attempt: int) -> FetchError:
    return FetchError(f"larger than the size cap of {request.max_bytes:,} bytes (max_bytes)".replace(",", " "),
                      url=request.url, attempts=attempt)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError, IndexError):
        return None


def _transport_problem(err: httpx.TransportError) -> str:
    if isinstance(err, httpx.ConnectError):
        return f"cannot connect: {err or 'connection refused'}"
    if isinstance(err, httpx.RemoteProtocolError):
        return f"the server broke the connection: {err}"
    return f"network error: {err or type(err).__name__}"


def _seconds(value: float) -> str:
    return f"{value:g} s"
