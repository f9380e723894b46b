"""What one hostile client costs everyone else, against a real `lenet5 serve` on 127.0.0.1.

    flock /tmp/lenet5-bench.lock .venv/bin/python bench/hostile.py [--only NAME ...]

Starts the service as production does (`lenet5 serve --no-access-log`, one worker, default
settings) and runs each case of bounded count and time, printing one JSON line per case:

- health_during_{webp,png}: one client posts a cheap-to-send, costly-to-decode image (a 1.6 KB
  lossless WebP or a 170 KB RGBA PNG, 6324×6324, under the pixel limit) three times in a row;
  another polls /health every 10 ms. The figure is /health's worst and p99 latency.
  health_during_webp_at_limit: the same with the largest WebP the default limits decode
  (2800×2800), which is decoded rather than refused.
- legit_rate(_at_limit): wrk's rate on POST /predict with MNIST test PNGs (32 connections),
  alone and while one connection keeps posting the heavy WebP (the WebP at the limit), three
  interleaved rounds of each; the figure is the median round's ratio.
- batch_rss: four parallel /predict/batch requests, each with one heavy WebP; the figure is
  the peak resident memory of the server and its child processes together (their RSS summed,
  which counts the pages they share more than once), and before it their memory idle, RSS and
  PSS (each page once, shared ones split among the processes). batch_rss_at_limit: the same with the
  largest WebP the default limits decode (2800×2800), plus four parallel 10 MiB bodies.
- int32_tiff: a 28×28 TIFF of 32-bit integers among 31 concurrent valid /predict requests,
  10 rounds; the figure is how many valid requests did not get 200.
- abandoned_batch(_at_limit): a batch of 16 heavy WebPs (WebPs at the limit) whose client
  leaves after 1 s; the figure is the server's CPU time spent after it left.
- multipart_header: a /predict/batch body whose part has a 60 MB Content-Disposition line;
  /health's worst latency meanwhile.
- silent_connections: 1,100 connections that never send a byte to a server limited to 1,024
  open files; whether a fresh /health answers, and how many are still open after 15 s.
- endless_header: 4 connections each sending 16 MiB of one header line that never ends; the
  server's memory growth and whether the connections are cut.
- parser_errors: what the server answers to a malformed Content-Length and request line, and
  whether a 413 for a declared-too-large body closes the connection.
- workers_sighup: `--workers 2` under wrk load on /predict, one SIGHUP to the parent; wrk's
  error count.
- decode_costs (no server): the peak memory of decoding one image, per header pixel, for a
  lossless WebP, an RGBA PNG, a grey PNG, a 16-bit TIFF and a JPEG, each in a fresh process.
- threads_vs_processes (in this process, no server): the event loop's worst lag while a
  decoder thread, then a decoder process, decodes the heavy WebP and PNG three times each.

Results go to bench/results/hostile.json (--out).
"""

import argparse
import asyncio
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from service import (  # the sibling benchmark's helpers
    BOUNDARY,
    REPO,
    Scenario,
    cpu_seconds,
    mnist_test_images,
    multipart,
    png,
)

HEAVY_SIDE = 6324  # 40.0 M pixels: just under the default pixel limit
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def encoded(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def heavy_webp() -> bytes:
    return encoded(Image.new("L", (HEAVY_SIDE, HEAVY_SIDE), 255), "WEBP", lossless=True)


def heavy_png() -> bytes:
    return encoded(Image.new("RGBA", (HEAVY_SIDE, HEAVY_SIDE), (255, 255, 255, 255)), "PNG")


def webp_at_limit() -> bytes:
    """The largest square lossless WebP that the default decode allowance (128 MiB) takes."""
    return encoded(Image.new("L", (2800, 2800), 255), "WEBP", lossless=True)


def int32_tiff() -> bytes:
    digit = np.zeros((28, 28), np.int32)
    digit[6:22, 12:16] = 1_000_000  # int32 levels far above 16 bits
    return encoded(Image.fromarray(digit), "TIFF")


def process_tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with open(task / "children") as f:
                stack.extend(int(child) for child in f.read().split())
    return pids


def tree_rss_kib(pid: int, field: str = "VmRSS", source: str = "status") -> int:
    """A process's and its descendants' resident memory summed: RSS (each shared page counted
    in every process that maps it), or with field="Pss", source="smaps_rollup" each page once,
    shared ones split among their processes (what a container's memory limit counts)."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/{source}").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for member in process_tree(pid):
        with suppress(FileNotFoundError):
            total += cpu_seconds(member)
    return total


class Server:
    def __init__(self, port: int, workers: int = 1, nofile: int | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.port = port

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        # A file, not a pipe: a server logging many errors would block on a full pipe.
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (read and closed by stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "model.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port), "--workers", str(workers), "--no-access-log"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log, text=True,
            preexec_fn=limit_files, env=os.environ | (env or {}),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    time.sleep(0.5 if workers == 1 else 3)  # let the other workers come up
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not become ready")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> str:
        """Stop the server; what it logged."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        with self.log:
            self.log.seek(0)
            return self.log.read()


@contextmanager
def health_probe(url: str, every: float = 0.01) -> Iterator[list[float]]:
    """Polls /health from its own connection; yields the latencies (s), failures as inf."""
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                start = time.perf_counter()
                try:
                    ok = client.get(f"{url}/health").status_code == 200
                except httpx.TransportError:
                    ok = False
                latencies.append(time.perf_counter() - start if ok else float("inf"))
                time.sleep(every)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join()


def latency_summary(latencies: list[float]) -> dict[str, Any]:
    finite = sorted(x for x in latencies if x != float("inf"))
    return {
        "health_requests": len(latencies),
        "health_failed": len(latencies) - len(finite),
        "health_max_ms": round(finite[-1] * 1000, 1) if finite else None,
        "health_p99_ms": round(finite[int(len(finite) * 0.99)] * 1000, 1) if finite else None,
    }


def post(url: str, path: str, body: bytes, ctype: str, timeout: float = 60) -> int | str:
    try:
        answer = httpx.post(url + path, content=body, headers={"Content-Type": ctype},
                            timeout=timeout)  # fmt: skip
        return answer.status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def health_during(server: Server, body: bytes, name: str) -> dict[str, Any]:
    """/health's latency while one client posts `body` three times in a row."""
    with health_probe(server.url) as latencies:
        time.sleep(0.3)
        start = time.perf_counter()
        statuses = [post(server.url, "/predict", body, "image/webp") for _ in range(3)]
        seconds = time.perf_counter() - start
        time.sleep(0.3)
    return {"case": f"health_during_{name}", "upload_bytes": len(body), "statuses": statuses,
            "attack_seconds": round(seconds, 2)} | latency_summary(latencies)  # fmt: skip


def legit_rate(server: Server, work: Path, heavy: bytes, seconds: int,
               name: str = "legit_rate") -> dict[str, Any]:  # fmt: skip
    """wrk's rate alone and with one attacker, in three interleaved rounds of each (the machine's
    speed drifts from minute to minute); the ratio is the median round's."""
    pngs = [png(image) for image in mnist_test_images(256)]
    scenario = Scenario(work, name, "POST", "/predict", "image/png", pngs)
    scenario.run(server.url, 2, 32, 1, server.pid)  # warm-up
    keep = ("requests_per_s", "p50_ms", "p99_ms", "errors", "loadavg_1min")
    rounds: dict[str, list[dict[str, Any]]] = {"alone": [], "with_attacker": []}
    sent: list[int | str] = []
    for _ in range(3):
        rounds["alone"].append(scenario.run(server.url, seconds, 32, 1, server.pid))
        stop = threading.Event()

        def attack(stop: threading.Event = stop) -> None:
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    try:
                        sent.append(
                            client.post(
                                f"{server.url}/predict",
                                content=heavy,
                                headers={"Content-Type": "image/webp"},
                            ).status_code
                        )
                    except httpx.TransportError as exc:
                        sent.append(type(exc).__name__)  # fmt: skip

        attacker = threading.Thread(target=attack, daemon=True)
        attacker.start()
        time.sleep(0.2)
        rounds["with_attacker"].append(scenario.run(server.url, seconds, 32, 1, server.pid))
        stop.set()
        attacker.join()
    pairs = zip(rounds["alone"], rounds["with_attacker"], strict=True)
    ratios = [round(hit["requests_per_s"] / alone["requests_per_s"], 3) for alone, hit in pairs]
    return {
        "case": name,
        "upload_bytes": len(heavy),
        "alone": [{key: row[key] for key in keep} for row in rounds["alone"]],
        "with_attacker": [{key: row[key] for key in keep} for row in rounds["with_attacker"]],
        "attacker_requests": len(sent),
        "attacker_bytes": len(sent) * len(heavy),
        "attacker_statuses": sorted({str(status) for status in sent}),
        "ratios": ratios,
        "ratio": sorted(ratios)[1],
    }


@contextmanager
def rss_sampler(pid: int) -> Iterator[dict[str, int]]:
    pss = tree_rss_kib(pid, "Pss", "smaps_rollup")
    peak = {"before_kib": tree_rss_kib(pid), "before_pss_kib": pss, "peak_kib": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["peak_kib"] = max(peak["peak_kib"], tree_rss_kib(pid))
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        peak["after_kib"] = tree_rss_kib(pid)


def batch_rss(server: Server, heavy: bytes, name: str = "batch_rss",
              junk: int = 0) -> dict[str, Any]:  # fmt: skip
    """Four parallel batches of one `heavy` image each, and `junk` parallel 10 MiB bodies."""
    body = multipart([heavy], "files")
    big = b"\0" * (10 * 1024 * 1024)
    jobs = [("/predict/batch", body, MULTIPART)] * 4 + [("/predict", big, "image/png")] * junk
    with rss_sampler(server.pid) as rss, ThreadPoolExecutor(len(jobs)) as pool:
        statuses = list(pool.map(lambda job: post(server.url, *job), jobs))
    return {"case": name, "statuses": statuses} | rss | {
        "peak_mib": round(rss["peak_kib"] / 1024, 1)}  # fmt: skip


def int32_tiff_case(server: Server) -> dict[str, Any]:
    pngs = [png(image) for image in mnist_test_images(31)]
    tiff = int32_tiff()
    valid_failed = 0
    tiff_statuses = []
    with ThreadPoolExecutor(32) as pool:
        for _ in range(10):
            jobs = [pool.submit(post, server.url, "/predict", body, "image/png") for body in pngs]
            tiff_statuses.append(post(server.url, "/predict", tiff, "image/tiff"))
            valid_failed += sum(job.result() != 200 for job in jobs)
    try:
        batch = httpx.post(f"{server.url}/predict/batch", headers={"Content-Type": MULTIPART},
                           content=multipart([pngs[0], tiff], "files"), timeout=60)  # fmt: skip
        batch_status, batch_body = batch.status_code, batch.text[:200]
    except httpx.TransportError as exc:
        batch_status, batch_body = type(exc).__name__, ""
    return {"case": "int32_tiff", "valid_requests": 310, "valid_not_200": valid_failed,
            "tiff_statuses": sorted(set(map(str, tiff_statuses))),
            "batch_status": batch_status, "batch_body": batch_body}  # fmt: skip


def abandoned_batch(server: Server, heavy: bytes, name: str = "abandoned_batch") -> dict[str, Any]:
    body = multipart([heavy] * 16, "files")
    cpu_before = tree_cpu_seconds(server.pid)
    start = time.perf_counter()
    status = post(server.url, "/predict/batch", body, MULTIPART, timeout=1)
    left = time.perf_counter()
    cpu_at_leave = tree_cpu_seconds(server.pid)
    # Idle again once a second's CPU time stays under 0.05 s.
    while time.perf_counter() - left < 30:
        before = tree_cpu_seconds(server.pid)
        time.sleep(0.5)
        if tree_cpu_seconds(server.pid) - before < 0.025:
            break
    busy_until = time.perf_counter() - 0.5
    return {
        "case": name,
        "client_result": status,
        "client_seconds": round(left - start, 2),
        "cpu_before_leaving_s": round(cpu_at_leave - cpu_before, 2),
        "cpu_after_leaving_s": round(tree_cpu_seconds(server.pid) - cpu_at_leave, 2),
        "busy_after_leaving_s": round(max(0.0, busy_until - left), 2),
    }


def multipart_header(server: Server) -> dict[str, Any]:
    filler = b"a" * 60_000_000
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; x=\"".encode()
            + filler + b'"\r\n\r\nxx\r\n' + f"--{BOUNDARY}--\r\n".encode())  # fmt: skip
    with health_probe(server.url) as latencies:
        time.sleep(0.3)
        status = post(server.url, "/predict/batch", body, MULTIPART)
        time.sleep(0.3)
    return {"case": "multipart_header", "body_bytes": len(body), "status": status} | (
        latency_summary(latencies))  # fmt: skip


def fresh_health(url: str) -> int | str:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code
    except httpx.TransportError as exc:
        return type(exc).__name__


def silent_connections(port: int, count: int = 1100, nofile: int = 1024) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 256), hard))
    server = Server(port, nofile=nofile)
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
        time.sleep(1)
        during = fresh_health(server.url)
        time.sleep(14)
        open_after = 0
        for sock in sockets:
            sock.setblocking(False)
            try:
                open_after += sock.recv(1) != b""  # b"" (or an error) is a closed connection
            except BlockingIOError:
                open_after += 1
            except OSError:
                pass
        after = fresh_health(server.url)
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    return {"case": "silent_connections", "connections": count, "server_nofile": nofile,
            "fresh_health_while_held": during, "still_open_after_15s": open_after,
            "fresh_health_after_15s": after}  # fmt: skip


def endless_header(server: Server, each: int = 16 * 1024 * 1024) -> dict[str, Any]:
    before = tree_rss_kib(server.pid)
    chunk = b"a" * 65536
    cut = 0
    sent_total = 0

    def send() -> tuple[int, bool]:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: ")
        sent = 0
        try:
            while sent < each:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            return sent, True
        finally:
            time.sleep(0.5)
            sock.close()
        return sent, False

    with rss_sampler(server.pid) as rss, ThreadPoolExecutor(4) as pool:
        for sent, was_cut in pool.map(lambda _: send(), range(4)):
            sent_total += sent
            cut += was_cut
    return {"case": "endless_header", "bytes_sent": sent_total, "connections_cut": cut,
            "rss_before_kib": before, "rss_peak_kib": rss["peak_kib"],
            "growth_mib": round((rss["peak_kib"] - before) / 1024, 1),
            "health_after": fresh_health(server.url)}  # fmt: skip


def raw_exchange(port: int, request: bytes, then: bytes = b"") -> tuple[str, str, bool]:
    """Status line and Content-Type of the answer to `request`, and whether the server closed
    the connection after it (sending `then` first, to see whether it is still read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
        head = data.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        ctype = next((h.split(":", 1)[1].strip() for h in head if h.lower().startswith(
            "content-type:")), "")  # fmt: skip
        closed = False
        try:
            if then:
                sock.sendall(then)
            sock.settimeout(2)
            while True:
                piece = sock.recv(65536)
                if not piece:
                    closed = True
                    break
        except (TimeoutError, OSError) as exc:
            closed = not isinstance(exc, TimeoutError)
        return head[0], ctype, closed


def parser_errors(server: Server) -> dict[str, Any]:
    bad_length = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"
    bad_line = b"GARBAGE\r\n\r\n"
    too_large = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                 b"Content-Length: 999999999\r\n\r\n")  # fmt: skip
    cases = {
        "bad_content_length": raw_exchange(server.port, bad_length),
        "bad_request_line": raw_exchange(server.port, bad_line),
        "declared_too_large": raw_exchange(server.port, too_large, b"x" * 1_000_000),
    }
    return {"case": "parser_errors"} | {
        name: {"status_line": status, "content_type": ctype, "connection_closed": closed}
        for name, (status, ctype, closed) in cases.items()
    }


def workers_sighup(port: int, work: Path, seconds: int = 8) -> dict[str, Any]:
    server = Server(port, workers=2)
    pngs = [png(image) for image in mnist_test_images(64)]
    scenario = Scenario(work, "sighup", "POST", "/predict", "image/png", pngs)
    try:
        timer = threading.Timer(seconds / 2, server.process.send_signal, [signal.SIGHUP])
        timer.start()
        row = scenario.run(server.url, seconds, 32, 1, server.pid)
        timer.join()
        time.sleep(3)
        metrics = [httpx.get(f"{server.url}/metrics").text for _ in range(6)]
        counts = {
            next((line.split()[-1] for line in text.splitlines() if line.startswith(
                'lenet5_http_requests_total{method="GET",route="/metrics"')), "0")
            for text in metrics
        }  # fmt: skip
    finally:
        err = server.stop()
    return {"case": "workers_sighup", "requests": row["requests"], "errors": row["errors"],
            "requests_per_s": row["requests_per_s"],
            "distinct_metrics_counters_over_6_scrapes": len(counts),
            "server_errors_logged": err.count("Traceback")}  # fmt: skip


def decode_unbounded(data: bytes) -> None:
    """Decode as the service does, with no memory allowance: what a decoder would face."""
    from app.errors import RequestError
    from app.imaging import decode
    from app.settings import Settings

    with suppress(RequestError):
        decode(data, Settings().max_image_pixels, 2**40)


async def tick(lags: list[float], done: asyncio.Event) -> None:
    """Time a 1 ms sleep over and over until `done`: how late the event loop wakes."""
    while not done.is_set():
        begin = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - begin - 0.001)


def threads_vs_processes(uploads: dict[str, bytes]) -> dict[str, Any]:
    """The event loop's worst lag (a 1 ms sleep timed in a loop) while one decoder thread or one
    decoder process decodes each heavy upload three times; and the cost of a trip to each."""
    import multiprocessing
    from concurrent.futures import Executor, ProcessPoolExecutor

    async def measure(executor: Executor) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, int)  # started
        start = time.perf_counter()
        for _ in range(200):
            await loop.run_in_executor(executor, int)
        figures: dict[str, Any] = {"trip_us": round((time.perf_counter() - start) / 200 * 1e6)}
        for name, data in uploads.items():
            lags: list[float] = []
            done = asyncio.Event()
            ticker = asyncio.create_task(tick(lags, done))
            for _ in range(3):
                await loop.run_in_executor(executor, decode_unbounded, data)
            done.set()
            await ticker
            figures[f"{name}_max_loop_lag_ms"] = round(max(lags) * 1000, 1)
        return figures

    context = multiprocessing.get_context("forkserver")
    with ThreadPoolExecutor(1) as thread, ProcessPoolExecutor(1, mp_context=context) as process:
        return {"case": "threads_vs_processes", "thread": asyncio.run(measure(thread)),
                "process": asyncio.run(measure(process))}  # fmt: skip


COST_PROBE = """
import io, sys
from PIL import Image
from app.errors import RequestError
from app.imaging import decode
def peak():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
data = sys.stdin.buffer.read()
size = Image.open(io.BytesIO(data)).size
base = peak()
open("/proc/self/clear_refs", "w").write("5")  # restart the peak from here
try:
    decode(data, None, 2**40)
except RequestError:
    pass
print((peak() - base) * 1024 / (size[0] * size[1]))
"""


def decode_costs() -> dict[str, Any]:
    """Peak memory of decoding one image, per header pixel, by format and mode: each in a fresh
    process, over what that process held before (the per-format costs app.imaging charges)."""
    samples = {
        "webp_lossless_2800": encoded(Image.new("L", (2800, 2800), 0), "WEBP", lossless=True),
        "png_rgba_4000": encoded(Image.new("RGBA", (4000, 4000), (255, 255, 255, 0)), "PNG"),
        "png_grey_6324": encoded(Image.new("L", (6324, 6324), 255), "PNG"),
        "tiff_16bit_4000": encoded(Image.new("I;16", (4000, 4000), 0), "TIFF"),
        "jpeg_rgb_6324": encoded(Image.new("RGB", (6324, 6324), (255, 255, 255)), "JPEG"),
    }
    figures = {}
    for name, data in samples.items():
        probe = subprocess.run([sys.executable, "-c", COST_PROBE], input=data, cwd=REPO,
                               capture_output=True, check=True, timeout=120)  # fmt: skip
        figures[f"{name}_bytes_per_pixel"] = round(float(probe.stdout), 1)
    return {"case": "decode_costs"} | figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8112)
    parser.add_argument("--seconds", type=int, default=8, help="each legit_rate slice")
    parser.add_argument("--only", nargs="*", default=None, help="run only these cases")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "hostile.json")
    args = parser.parse_args()
    webp, rgba, at_limit = heavy_webp(), heavy_png(), webp_at_limit()
    results: list[dict[str, Any]] = []
    wanted = set(args.only) if args.only else None

    def run(name: str, fn: Callable[[], dict[str, Any]]) -> None:
        if wanted is None or name in wanted:
            row = fn()
            row["loadavg_1min"] = os.getloadavg()[0]
            print(json.dumps(row), flush=True)
            results.append(row)

    run("threads_vs_processes", lambda: threads_vs_processes({"webp": webp, "png": rgba}))
    run("decode_costs", decode_costs)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = Server(args.port)
        try:
            run("endless_header", lambda: endless_header(server))  # first: memory still low
            run("health_during_webp", lambda: health_during(server, webp, "webp"))
            run("health_during_png", lambda: health_during(server, rgba, "png"))
            run(
                "health_during_webp_at_limit",
                lambda: health_during(server, at_limit, "webp_at_limit"),
            )
            run("legit_rate", lambda: legit_rate(server, work, webp, args.seconds))
            run("legit_rate_at_limit", lambda: legit_rate(server, work, at_limit, args.seconds,
                                                          "legit_rate_at_limit"))  # fmt: skip
            run("int32_tiff", lambda: int32_tiff_case(server))
            run("abandoned_batch", lambda: abandoned_batch(server, webp))
            run(
                "abandoned_batch_at_limit",
                lambda: abandoned_batch(server, at_limit, "abandoned_batch_at_limit"),
            )
            run("multipart_header", lambda: multipart_header(server))
            run("parser_errors", lambda: parser_errors(server))
            run("batch_rss", lambda: batch_rss(server, webp))  # last: it may leave memory held
            run("batch_rss_at_limit", lambda: batch_rss(server, at_limit,
                                                        "batch_rss_at_limit", junk=4))  # fmt: skip
        finally:
            server.stop()
        run("silent_connections", lambda: silent_connections(args.port))
        run("workers_sighup", lambda: workers_sighup(args.port, work))
    report = {"cases": results, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "cpus": os.cpu_count(), "git": git_head()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


def git_head() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
