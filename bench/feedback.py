"""Throughput of POST /feedback: one uvicorn worker, SQLite and then PostgreSQL, driven by wrk.

    flock /tmp/lenet5-bench.lock python bench/feedback.py [--duration 10] [--connections 16]

For each store the service starts fresh (`lenet5 serve --workers 1 --no-access-log`, the
shipped model) with an empty store: SQLite in a temporary directory (WAL, synchronous=NORMAL),
or a PostgreSQL 15 server started for the run from Debian's binaries (tests/postgres.py) with
its durable defaults (fsync and synchronous_commit on), reached over a Unix socket. wrk sends
multipart corrections (a distinct 28×28 MNIST test digit and its label each, so every request
stores a new record) for --duration seconds after a 2 s warm-up of other corrections. Reports
requests/s, latency, errors, the records stored and the server's CPU per request; results go
to bench/results/feedback.json. Needs wrk and the MNIST test files.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postgres import Cluster, bindir
from service import BOUNDARY, Scenario, free_port, mnist_test_images, png, start_server

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "feedback.json"
DIGITS = 10_000
WARM_UP = 500


def correction(image: bytes, label: str, index: int) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{index}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + image
        + f'\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name="label"\r\n\r\n{label}\r\n'
        f"--{BOUNDARY}--\r\n".encode()
    )


def run_store(name: str, env: dict[str, str], args: argparse.Namespace, work: Path) -> dict:
    images = mnist_test_images(DIGITS)
    pngs = [png(image) for image in images]
    # Distinct keys: the warm-up says "not a digit" of images the timed run labels 0 … 9.
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    warm = Scenario(
        work,
        f"{name}-warm",
        "POST",
        "/feedback",
        ctype,
        [correction(pngs[i], "none", i) for i in range(WARM_UP)],
    )
    timed = Scenario(
        work,
        name,
        "POST",
        "/feedback",
        ctype,
        [correction(data, str(i % 10), i) for i, data in enumerate(pngs)],
    )
    port = free_port()
    os.environ.update(env)  # start_server's child inherits the environment
    try:
        server = start_server(port)
    finally:
        for key in env:
            del os.environ[key]
    url = f"http://127.0.0.1:{port}"
    try:
        warm.run(url, 2, args.connections, 1, server.pid)
        before = httpx.get(f"{url}/feedback/stats").json()["total"]
        row = timed.run(url, args.duration, args.connections, 1, server.pid)
        row["stored"] = httpx.get(f"{url}/feedback/stats").json()["total"] - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    row["store"] = name
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows.append(run_store("sqlite", {"LENET5_FEEDBACK_DB": str(work / "db")}, args, work))
        found = bindir()
        if found is None:
            raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
        with Cluster(found, durable=True) as cluster:
            url = cluster.create_database("lenet5")
            rows.append(run_store("postgresql", {"LENET5_FEEDBACK_URL": url}, args, work))
    for row in rows:
        print(
            f"{row['store']:<11} {row['requests_per_s']:>8.1f} req/s  p50 {row['p50_ms']:.1f} ms"
            f"  p99 {row['p99_ms']:.1f} ms  errors {row['errors']}  stored {row['stored']}"
            f"  server CPU {row['server_cpu_us_per_request']:.0f} µs/request"
            f"  load {row['loadavg_1min']}"
        )
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
