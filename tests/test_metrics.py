"""The request metrics the middleware keeps itself, against prometheus_client's own types."""

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from app.metrics import LATENCY_BUCKETS, HttpStats


def samples(registry: CollectorRegistry) -> set[str]:
    """The exposition's sample lines, without comments and creation times."""
    return {
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("#") and "_created" not in line
    }


def test_http_stats_expose_what_prometheus_clients_counter_and_histogram_would() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    stats = HttpStats()
    ours.register(stats)
    labels = ["method", "route", "status"]
    requests = Counter("lenet5_http_requests", "x", labels, registry=theirs)
    latency = Histogram("lenet5_http_request_duration_seconds", "x", labels,
                        buckets=LATENCY_BUCKETS, registry=theirs)  # fmt: skip
    rng = random.Random(0)
    # Every bucket bound itself (buckets count `le`: inclusive), and values between them.
    values = [*LATENCY_BUCKETS, *(rng.uniform(0, 6) for _ in range(200)), 1e-6, 100.0]
    for value in values:
        key = rng.choice([("GET", "/health", 200), ("POST", "/predict", 415)])
        stats.observe(*key, value)
        requests.labels(*key[:2], str(key[2])).inc()
        latency.labels(*key[:2], str(key[2])).observe(value)
    assert samples(ours) == samples(theirs)


def test_http_stats_are_created_once_per_series() -> None:
    registry = CollectorRegistry()
    stats = HttpStats()
    registry.register(stats)
    stats.observe("GET", "/ready", 503, 0.001)
    stats.observe("GET", "/ready", 503, 0.002)
    text = generate_latest(registry).decode()
    assert 'lenet5_http_requests_total{method="GET",route="/ready",status="503"} 2.0' in text
    assert text.count('lenet5_http_requests_created{method="GET",route="/ready"') == 1
