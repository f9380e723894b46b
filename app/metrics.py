"""Prometheus metrics, in a registry of their own per app so several apps can share a process."""

import time
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from model.spec import DIGITS

UNMATCHED = "<unmatched>"  # one label for every unknown path, so scanners cannot add series
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lenet5_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lenet5_http_request_duration_seconds",
            "Time to answer, by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        # Labelled children, looked up once: .labels() costs more than the increment itself.
        self._by_digit = [self.predictions.labels(digit) for digit in DIGITS]
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = self._http[key] = (
                self.requests.labels(*labels),
                self.latency.labels(*labels),
            )
        children[0].inc()
        children[1].observe(seconds)

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

    def serving(self, version: str, sha256: str) -> None:
        self.model.clear()
        self.model.labels(version, sha256).set(1)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (plain ASGI: cheap)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

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
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.observe_request(
                scope["method"], route, status, time.perf_counter() - start
            )
