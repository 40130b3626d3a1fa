"""Prometheus metrics for ops: one registry that `digest run` serves and the web app can mount later.

Counters count what this process did; the gauges are read from the store at scrape time, so they tell the truth
whichever process (scheduler, cron job, manual send) did the work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from digest.errors import DigestError

REGISTRY = CollectorRegistry()

EDITIONS = Counter(
    "digest_editions", "Scheduled edition runs by digest and outcome (sent, interrupted, nothing_new, "
    "awaiting_approval, missed, expired, failed).", ["digest", "outcome"], registry=REGISTRY)
DELIVERIES = Counter(
    "digest_deliveries", "Deliveries tried by this process, by digest and resulting state.", ["digest", "state"],
    registry=REGISTRY)
SOURCE_FAILURES = Counter(
    "digest_source_failures", "Collections that failed, by digest and source.", ["digest", "source"],
    registry=REGISTRY)


class StoreCollector(Collector):
    """Gauges computed from the store at each scrape."""

    def __init__(self, store: object, digests: Iterable[str], clock: Callable[[], datetime]) -> None:
        self.store = store
        self.digests = tuple(digests)
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        from digest.store import Store

        store = self.store
        assert isinstance(store, Store)
        last = GaugeMetricFamily("digest_last_edition_deliveries",
                                 "Deliveries of each digest's latest edition, by state.",
                                 labels=["digest", "edition", "state"])
        age = GaugeMetricFamily("digest_seconds_since_last_success",
                                "Seconds since a delivery of the digest last succeeded.", labels=["digest"])
        waiting = GaugeMetricFamily("digest_pending_approvals", "Editions waiting for an editor.",
                                    labels=["digest"])
        now = self.clock()
        pending: dict[str, int] = {}
        for record in store.approvals(states=("pending", "held")):
            pending[record.digest] = pending.get(record.digest, 0) + 1
        for name in self.digests:
            stored = store.last_edition(name)
            if stored is not None:
                counts = store.delivery_counts(stored.id)
                for state in ("queued", "sending", "sent", "deferred", "failed"):
                    last.add_metric([name, stored.edition.key, state], counts.get(state, 0))
            success = store.last_success(name)
            if success is not None:
                age.add_metric([name], max(0.0, (now - success).total_seconds()))
            waiting.add_metric([name], pending.get(name, 0))
        yield from (last, age, waiting)


_store_collector: StoreCollector | None = None


def watch_store(store: object, digests: Iterable[str],
                clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    """Expose the store's gauges in REGISTRY (replacing the store watched before, if any)."""
    global _store_collector
    if _store_collector is not None:
        REGISTRY.unregister(_store_collector)
    _store_collector = StoreCollector(store, digests, clock)
    REGISTRY.register(_store_collector)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes every 15 s would drown the event log


Health = Callable[[], tuple[bool, dict[str, str]]]


def serve(port: int, health: Health, host: str = "127.0.0.1") -> tuple[int, Callable[[], None]]:
    """Serve /metrics and /healthz on host:port in a background thread; returns the port and a stop function."""
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            ok, facts = health()
            body = json.dumps({"status": "ok" if ok else "failing", **facts}).encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: try /metrics or /healthz\n"]

    try:
        server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    except OSError as err:
        raise DigestError(f"cannot serve metrics on {host}:{port}: {err.strerror} "
                          "(is another `digest run` using that port? choose another with --metrics-port)") from None
    thread = threading.Thread(target=server.serve_forever, name="digest-metrics", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return server.server_port, stop
