"""Prometheus metrics, in a registry of their own per app so several apps can share a process,
and the middleware that counts, times and logs every request.

The per-request figures (requests and latency by route and status) are plain numbers kept by
the middleware on the event loop and turned into Prometheus samples only when /metrics is
scraped: prometheus_client's own Counter and Histogram take a lock and walk the buckets in
Python on every observation, which the middleware would pay on every request.
"""

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import RequestError, http_status
from model.spec import DIGITS

UNMATCHED = "<unmatched>"  # one label for every unknown path, so scanners cannot add series
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class HttpStats(Collector):
    """Requests and their latency by (method, route, status), as Prometheus's
    lenet5_http_requests counter and lenet5_http_request_duration_seconds histogram.

    Observed and collected on the event loop only (the middleware, the /metrics route), so the
    numbers need no lock.
    """

    LABELS = ("method", "route", "status")

    def __init__(self) -> None:
        # key -> [created, count, sum, then one count per bucket and +Inf (not cumulative)]
        self._series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [time.time(), 0, 0.0] + [0] * (len(LATENCY_BUCKETS) + 1)
        series[1] += 1
        series[2] += seconds
        series[3 + bisect_left(LATENCY_BUCKETS, seconds)] += 1  # buckets are `le`: inclusive

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "lenet5_http_requests",
            "HTTP requests by method, route template and status",
            labels=self.LABELS,
        )
        latency = HistogramMetricFamily(
            "lenet5_http_request_duration_seconds",
            "Time to answer, by method, route template and status",
            labels=self.LABELS,
        )
        for (method, route, status), series in list(self._series.items()):
            labels = (method, route, str(status))
            created, count, total = series[:3]
            requests.add_metric(labels, count, created=created)
            cumulative, buckets = 0.0, []
            for bound, hits in zip((*LATENCY_BUCKETS, float("inf")), series[3:], strict=True):
                cumulative += hits
                buckets.append((floatToGoString(bound), cumulative))
            latency.add_metric(labels, buckets, total)
        yield requests
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpStats()
        self.registry.register(self.http)
        self.predictions = Counter(
            "lenet5_predictions", "Images answered, by predicted digit", ["digit"],
            registry=self.registry,
        )  # fmt: skip
        self.rejections = Counter(
            "lenet5_rejections", "Images answered as not confidently one digit",
            registry=self.registry,
        )  # fmt: skip
        self.batch_sizes = Histogram(
            "lenet5_inference_batch_size",
            "Uploads read together by /predict's dynamic batching (one onnxruntime run each)",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.reloads = Counter(
            "lenet5_model_reloads", "Model reloads, by result", ["result"], registry=self.registry
        )
        self.model = Gauge(
            "lenet5_model_info", "The model serving (value 1)", ["version", "sha256"],
            registry=self.registry,
        )  # fmt: skip
        self.feedback = Counter(
            "lenet5_feedback_received",
            "Corrections received by POST /feedback, by label and result (stored, duplicate, "
            "or 'refused' and the HTTP status answered)",
            ["label", "result"],
            registry=self.registry,
        )
        self.reads = Counter(
            "lenet5_reads",
            "Lines answered by POST /read, by outcome (read, rejected, or 'refused' and the "
            "HTTP status answered)",
            ["outcome"],
            registry=self.registry,
        )
        self.read_pieces = Histogram(
            "lenet5_read_pieces",
            "Candidate pieces of a line scored by the network per /read (one onnxruntime run)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        # Labelled children, looked up once: .labels() costs more than the increment itself.
        self._by_digit = [self.predictions.labels(digit) for digit in DIGITS]

    def observe_prediction(self, result: dict[str, Any]) -> None:
        self._by_digit[result["digit"]].inc()
        if result["rejected"]:
            self.rejections.inc()

    def observe_predictions(self, digits: np.ndarray, rejected: np.ndarray) -> None:
        """Many answers at once: their digits (int) and rejections (bool)."""
        for child, count in zip(self._by_digit, np.bincount(digits, minlength=10), strict=True):
            if count:
                child.inc(int(count))
        if rejected.any():
            self.rejections.inc(int(rejected.sum()))

    def observe_read(self, result: dict[str, Any], pieces: int) -> None:
        self.reads.labels("rejected" if result["rejected"] else "read").inc()
        self.read_pieces.observe(pieces)

    def read_refused(self, error: RequestError) -> None:
        self.reads.labels(f"refused {http_status(error)}").inc()

    def feedback_stored(self, label: str, duplicate: bool) -> None:
        self.feedback.labels(label, "duplicate" if duplicate else "stored").inc()

    def feedback_refused(self, error: Exception) -> None:
        status = http_status(error) if isinstance(error, RequestError) else 500
        self.feedback.labels("", f"refused {status}").inc()

    def serving(self, version: str, sha256: str) -> None:
        self.model.clear()
        self.model.labels(version, sha256).set(1)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template, and writes its access-log
    line when there is an access log (plain ASGI: cheap)."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, access_log: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.observe = metrics.http.observe
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.observe(scope["method"], route, status, seconds)
            if self.access_log is not None:
                self.access_log(access_line(scope, status, seconds))


def access_line(scope: Scope, status: int, seconds: float) -> str:
    """One request as the access log shows it: client, request line, status, time to answer.

    The request line is the raw target as the client sent it, which an HTTP parser has already
    refused to contain line breaks, so a request cannot forge log lines."""
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    target = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string")
    if query:
        target += b"?" + query
    return (
        f'{peer} - "{scope["method"]} {target.decode("latin-1")} HTTP/{scope["http_version"]}" '
        f"{status} {seconds * 1000:.1f}ms"
    )
