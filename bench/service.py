"""Throughput and latency of the lenet5 service, driven by wrk on 127.0.0.1.

    python bench/service.py [--duration 4] [--rounds 9] [--soak 60] [--connections 32] [--v2-only]
                            [--photos-only]

Starts ONE uvicorn worker (uvloop + httptools, `lenet5 serve --no-access-log`) on the shipped
model and measures, with --connections connections, GET /health and POST /predict with
distinct 28×28 MNIST test PNGs as the raw body and as a multipart upload, in --rounds rounds
of --duration seconds each, every slice after a 1 s untimed warm-up of its own. A second
worker with the default access log (written to a file) takes the raw /predict in the same
rounds, so the log's cost is a ratio between slices seconds apart too. The machine's
speed drifts from minute to minute by up to ~1.7×, so the ratios to /health are taken within
each round, between slices seconds apart, and the median round's ratio is reported; each
scenario's row is its median round. Then POST /predict/batch with 256 distinct PNGs per
request, once. Then a soak of
POST /predict for --soak seconds: zero errors, and the server's resident memory before and
after. Then the inference protocol (v2_figures; alone with --v2-only): infer with 256 images a
request as a binary FP32 tensor against onnxruntime alone at batch 256, round by round, the
JSON and BYTES-upload forms beside it, and /health's latency beside 256-image infers with their
work in a worker thread and on the event loop. Then photos and numbers (photo_figures; alone
with --photos-only), with 4 clients: POST /predict of a 1-MP and of a 12-MP phone JPEG of one
digit on paper, POST /read of a 6-digit number drawn on a 600×150 canvas (PNG) and of a 1-MP
photo of one (bench/speed_inputs.py, MNIST test digits), in rounds, each answer checked first,
and the pieces scored per read from /metrics; with the default decoder process, then one per
core, then one more. Then, with the server stopped, onnxruntime alone (batch 1 latency per
optimisation level and thread count, batch 256 throughput) and the pieces of one request
in-process.
The load average is recorded beside every figure: another job on the machine depresses them.
Needs wrk (Debian: apt-get install wrk) and the MNIST test files (LENET5_TEST_DATA_DIR, else
../shared/data/mnist).
"""

import argparse
import gzip
import io
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LENET5_TEST_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
BATCH = 256
BOUNDARY = "lenet5benchboundary"
TARGETS = {"predict_raw": 0.6, "predict_multipart": 0.5}
# Photos and numbers (photo_figures), with PHOTO_CONNECTIONS clients: the least requests/s,
# and the most p50 latency where there is one.
PHOTO_TARGETS: dict[str, dict[str, float]] = {
    "predict_photo_1mp": {"requests_per_s": 150},
    "predict_photo_12mp": {"requests_per_s": 25, "p50_ms": 60},
    "read_canvas_6_digits": {"requests_per_s": 200},
    "read_photo_1mp_6_digits": {"requests_per_s": 80},
}
PHOTO_CONNECTIONS = 4
# Decoder processes the photo scenarios run with: the service's default, one per core, and one
# more than the cores, which keeps them busy while a decoder's answer travels back to the event
# loop and the next upload travels to it.
PHOTO_DECODERS = (1, os.cpu_count() or 1, (os.cpu_count() or 1) + 1)
# Distinct bodies each photo scenario cycles through (a 12-MP JPEG is ~3 MB).
PHOTO_BODIES = 12
# The scenarios run in rounds; the last against the server that writes an access log.
TIMED = ("health", "predict_raw", "predict_multipart", "predict_raw_access_log")
LOGGED = frozenset({"predict_raw_access_log"})
CLI = "model.cli"

# wrk script: cycles through the bodies in DIR (1.bin … N.bin), or sends none, and prints the
# summary as one JSON line. Each wrk thread runs its own copy.
LUA = """
local dir, n, method, path, ctype = "{dir}", {n}, "{method}", "{path}", "{ctype}"
local headers = {{["Content-Type"] = ctype{extra_headers}}}
local bodies = {{}}
for i = 1, n do
  local f = assert(io.open(dir .. "/" .. i .. ".bin", "rb"))
  bodies[i] = f:read("*all")
  f:close()
end
local requests = {{}}
-- Each request is formatted once: building a 1 MiB request string anew for every request
-- would time wrk's Lua, not the service.
init = function(args)
  for i = 1, n do requests[i] = wrk.format(method, path, headers, bodies[i]) end
end
local counter = math.random(n)
request = function()
  if n == 0 then return wrk.format(method, path) end
  counter = counter % n + 1
  return requests[counter]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def mnist_test_images(count: int) -> np.ndarray:
    with gzip.open(DATA / "t10k-images-idx3-ubyte.gz") as f:
        f.read(16)
        return np.frombuffer(f.read(count * 784), np.uint8).reshape(count, 28, 28)


def mnist_test_labels(count: int) -> np.ndarray:
    with gzip.open(DATA / "t10k-labels-idx1-ubyte.gz") as f:
        f.read(8)
        return np.frombuffer(f.read(count), np.uint8)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def multipart(files: list[bytes], field: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Scenario:
    def __init__(self, work: Path, name: str, method: str, path: str, ctype: str,
                 bodies: list[bytes], images_per_request: int = 1,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        self.name, self.images_per_request = name, images_per_request
        folder = work / name
        folder.mkdir()
        for i, body in enumerate(bodies, 1):
            (folder / f"{i}.bin").write_bytes(body)
        self.script = work / f"{name}.lua"
        self.script.write_text(
            LUA.format(dir=folder, n=len(bodies), method=method, path=path, ctype=ctype,
                       extra_headers="".join(f', ["{k}"] = "{v}"' for k, v in
                                             (headers or {}).items()))
        )  # fmt: skip

    def run(
        self, url: str, seconds: int, connections: int, threads: int, pid: int
    ) -> dict[str, Any]:
        load_before = os.getloadavg()[0]
        cpu_before, tree_before = cpu_seconds(pid), tree_cpu_seconds(pid)
        wrk = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
             "-s", str(self.script), url],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        )  # fmt: skip
        cpu = cpu_seconds(pid) - cpu_before
        tree_cpu = tree_cpu_seconds(pid) - tree_before
        summary = json.loads(wrk.stdout.strip().splitlines()[-1])
        rps = summary["requests"] / (summary["duration_us"] / 1e6)
        return {
            "scenario": self.name,
            "requests_per_s": round(rps, 1),
            "images_per_s": round(rps * self.images_per_request, 1),
            "p50_ms": summary["p50_us"] / 1000,
            "p99_ms": summary["p99_us"] / 1000,
            "requests": summary["requests"],
            "errors": summary["errors"],
            # The server's own CPU time per request: unlike requests/s, barely moved by other
            # jobs taking turns on the cores.
            "server_cpu_us_per_request": round(cpu / max(1, summary["requests"]) * 1e6, 1),
            "server_cpu_share": round(cpu / (summary["duration_us"] / 1e6), 2),
            # With its decoder processes: what the whole request costs, wherever it runs.
            "server_and_decoders_cpu_us_per_request": round(
                tree_cpu / max(1, summary["requests"]) * 1e6, 1
            ),
            "connections": connections,
            "seconds": seconds,
            "loadavg_1min": round((load_before + os.getloadavg()[0]) / 2, 2),
        }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of a process and of every live process under it (its decoders)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError):
            continue  # gone meanwhile
    tree, grown = {pid}, True
    while grown:
        below = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= below
        grown = bool(below)
    total = 0.0
    for member in tree:
        try:
            total += cpu_seconds(member)
        except OSError:
            continue
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_server(
    port: int,
    log: Path | None = None,
    launcher: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> subprocess.Popen:
    """`lenet5 serve` on `port`, started by `launcher` (default: python -m model.cli) in `cwd`,
    with the default access log into `log`, or none; `env` adds to its environment (settings)."""
    command = [*(launcher or [sys.executable, "-m", CLI]), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", "1"]  # fmt: skip
    command += [] if log else ["--no-access-log"]
    with open(log or os.devnull, "wb") as out:
        server = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL,
                                  env=os.environ | (env or {}))  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not become ready")


def check_answers(url: str, pngs: list[bytes], raw: list[bytes]) -> None:
    """The bodies the scenarios send are answered, with a digit, before anything is timed."""
    answer = httpx.post(f"{url}/predict", content=raw[0], headers={"Content-Type": "image/png"})
    form = httpx.post(f"{url}/predict", files={"file": ("0.png", pngs[0], "image/png")})
    assert answer.status_code == form.status_code == 200 and answer.json() == form.json()


def median_round(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median requests/s (the lower middle one of an even count)."""
    return sorted(rows, key=lambda row: row["requests_per_s"])[(len(rows) - 1) // 2]


def mean_batch_size(url: str) -> float:
    """Images per model run of /predict's dynamic batching so far, from /metrics."""
    samples = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        samples[name] = value
    runs = float(samples["lenet5_inference_batch_size_count"])
    return round(float(samples["lenet5_inference_batch_size_sum"]) / runs, 1)


PREDICT_200 = 'lenet5_http_requests_total{method="POST",route="/predict",status="200"}'


def answered_predictions(url: str) -> int:
    """/predict requests answered 200 so far, from /metrics."""
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith(PREDICT_200):
            return int(float(line.rpartition(" ")[2]))
    return 0


def service_figures(args: argparse.Namespace, work: Path) -> tuple[list[dict], dict, dict, dict]:
    images = mnist_test_images(4 * BATCH)
    pngs = [png(image) for image in images]
    multipart_type = f"multipart/form-data; boundary={BOUNDARY}"
    scenarios = {
        "health": Scenario(work, "health", "GET", "/health", "", []),
        "predict_raw": Scenario(work, "predict_raw", "POST", "/predict", "image/png",
                                pngs[:BATCH]),
        "predict_raw_access_log": Scenario(work, "predict_raw_access_log", "POST", "/predict",
                                           "image/png", pngs[:BATCH]),
        "predict_multipart": Scenario(work, "predict_multipart", "POST", "/predict",
                                      multipart_type,
                                      [multipart([p], "file") for p in pngs[:BATCH]]),
        "predict_batch_256": Scenario(work, "predict_batch_256", "POST", "/predict/batch",
                                      multipart_type,
                                      [multipart(pngs[i : i + BATCH], "files")
                                       for i in range(0, len(pngs), BATCH)],
                                      images_per_request=BATCH),
    }  # fmt: skip
    port, logged_port = free_port(), free_port()
    url, logged_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{logged_port}"
    log = work / "access.log"
    server = start_server(port)
    logged = start_server(logged_port, log)
    try:
        check_answers(url, pngs, pngs)
        for target, pid in ((url, server.pid), (logged_url, logged.pid)):  # warm-up
            scenarios["predict_raw"].run(target, 3, args.connections, args.threads, pid)
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in TIMED}
        for _ in range(args.rounds):
            for name in TIMED:
                target, pid = (logged_url, logged.pid) if name in LOGGED else (url, server.pid)
                scenarios[name].run(target, 1, args.connections, args.threads, pid)
                row = scenarios[name].run(target, args.duration, args.connections, args.threads,
                                          pid)  # fmt: skip
                rounds[name].append(row)
                print(format_row(row), flush=True)
        answered = answered_predictions(logged_url)
        logged.terminate()
        logged.wait(timeout=30)  # the access log writes what it holds before the process ends
        with log.open("rb") as lines:
            written = sum(1 for line in lines if b'"POST /predict HTTP/1.1" 200 ' in line)
        access_log = {"predict_200_answered": answered, "predict_200_lines_written": written}
        batching = {"mean_images_per_model_run": mean_batch_size(url)}
        results = [median_round(rows) | {"rounds": rows} for rows in rounds.values()]
        results.append(
            scenarios["predict_batch_256"].run(url, args.duration, 4, args.threads, server.pid)
        )
        print(format_row(results[-1]), flush=True)
        before = rss_kib(server.pid)
        soak = scenarios["predict_raw"].run(
            url, args.soak, args.connections, args.threads, server.pid
        )
        after = rss_kib(server.pid)
        soak |= {"scenario": "soak_predict_raw", "rss_before_kib": before, "rss_after_kib": after,
                 "rss_growth": round(after / before - 1, 4)}  # fmt: skip
        print(format_row(soak), f" RSS {before} → {after} KiB", flush=True)
    finally:
        for process in (server, logged):
            process.terminate()
            process.wait(timeout=30)
    return results, soak, batching, access_log


def timed(fn: Any, repeat: int) -> float:
    """Median seconds of one call, over `repeat` rounds of a tenth of the calls each."""
    fn()
    rounds = []
    for _ in range(10):
        start = time.perf_counter()
        for _ in range(max(1, repeat // 10)):
            fn()
        rounds.append((time.perf_counter() - start) / max(1, repeat // 10))
    return statistics.median(rounds)


def onnxruntime_figures() -> dict[str, Any]:
    """onnxruntime alone on the shipped model: the graph cut down to `distances` (what plain
    answers run) at batch 1 by optimisation level and threads, and at batch 256; the whole
    graph (what the explain view runs) beside it."""
    import onnxruntime as ort

    from app.predictor import distances_only, session_options
    from app.settings import shipped_model

    whole = shipped_model().read_bytes()
    graphs = {"distances_only": distances_only(whole), "whole": whole}
    x1 = np.random.default_rng(0).random((1, 1, 32, 32), np.float32)
    x256 = np.random.default_rng(1).random((BATCH, 1, 32, 32), np.float32)
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }

    def session(graph: bytes, threads: int = 1, level: Any = None) -> Any:
        options = session_options(threads)
        if level is not None:
            options.graph_optimization_level = level
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    batch1 = {}
    for threads in (1, 2):
        for name, level in levels.items():
            run = session(graphs["distances_only"], threads, level).run
            seconds = timed(lambda run=run: run(["distances"], {"image": x1}), 3000)
            batch1[f"{name}_threads{threads}_us"] = round(seconds * 1e6, 1)
    figures: dict[str, Any] = {"batch1_latency_us": batch1}
    for name, graph in graphs.items():
        run = session(graph).run
        one = timed(lambda run=run: run(["distances"], {"image": x1}), 3000)
        many = timed(lambda run=run: run(["distances"], {"image": x256}), 40)
        figures[name] = {"batch1_us": round(one * 1e6, 1), "batch256_images_per_s": round(
            BATCH / many, 1)}  # fmt: skip
    return figures | {"loadavg_1min": os.getloadavg()[0]}


def request_pieces() -> dict[str, float]:
    """What one /predict costs in-process, piece by piece, in microseconds."""
    import anyio
    import orjson
    from python_multipart.multipart import MultipartParser

    from app.imaging import to_model_inputs
    from app.imaging.decode import _open, _plain_grey_png
    from app.metrics import Metrics, MetricsMiddleware
    from app.predictor import Predictor
    from app.settings import shipped_model
    from app.uploads import parse_multipart

    predictor = Predictor.load(shipped_model())
    pngs = [png(image) for image in mnist_test_images(200)]
    data = pngs[0]
    x = predictor.preprocess(data)[None]
    distances = predictor.run(x)[0]
    answer = predictor.answer(distances)
    body = multipart([data], "file")
    cycle = iter(range(10**9))

    def python_multipart() -> None:
        parser = MultipartParser(BOUNDARY, {"on_part_data": lambda d, s, e: None})
        parser.write(body)
        parser.finalize()

    async def thread_hop(n: int = 2000) -> float:
        # What running each single image in a worker thread would add to a request.
        start = time.perf_counter()
        for _ in range(n):
            await anyio.to_thread.run_sync(int)
        return (time.perf_counter() - start) / n

    async def middleware(access_log: bool, n: int = 20000) -> float:
        # What the metrics middleware, and the access log's line, add to every request.
        scope = {
            "type": "http", "method": "GET", "path": "/health", "raw_path": b"/health",
            "query_string": b"", "http_version": "1.1", "client": ("127.0.0.1", 50000),
        }  # fmt: skip
        start_message = {"type": "http.response.start", "status": 200}

        async def endpoint(scope: Any, receive: Any, send: Any) -> None:
            await send(start_message)

        async def send(message: Any) -> None:
            pass

        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        wrapped = MetricsMiddleware(endpoint, Metrics(), lines.put if access_log else None)

        async def per_call(app: Any) -> float:
            start = time.perf_counter()
            for _ in range(n):
                await app(scope, None, send)
            return (time.perf_counter() - start) / n

        await per_call(wrapped)  # warm-up
        return statistics.median([await per_call(wrapped) - await per_call(endpoint)
                                  for _ in range(5)])  # fmt: skip

    def pillow_decode(data: bytes) -> np.ndarray:
        return np.asarray(_open(data, predictor.max_pixels)[0])

    pieces = {
        "preprocess_us": timed(lambda: predictor.preprocess(pngs[next(cycle) % 200]), 3000),
        # What /predict's dynamic batching does with the uploads of one turn of the event loop.
        "preprocess_in_batches_of_16_us_per_image": timed(
            lambda: to_model_inputs(pngs[: 16 + next(cycle) % 4][:16], predictor.spec), 300
        )
        / 16,
        # The 28×28 greyscale PNG both ways: libspng (what the service uses) and Pillow.
        "decode_libspng_us": timed(lambda: _plain_grey_png(pngs[next(cycle) % 200], 10**6), 3000),
        "decode_pillow_us": timed(lambda: pillow_decode(pngs[next(cycle) % 200]), 3000),
        "onnxruntime_us": timed(lambda: predictor.run(x), 3000),
        "answer_us": timed(lambda: predictor.answer(distances), 5000),
        "orjson_us": timed(lambda: orjson.dumps(answer), 5000),
        "json_stdlib_us": timed(lambda: json.dumps(answer).encode(), 5000),
        "own_multipart_parser_us": timed(
            lambda: parse_multipart(body, f"multipart/form-data; boundary={BOUNDARY}"), 5000
        ),
        "python_multipart_us": timed(python_multipart, 3000),
        "thread_hop_us": anyio.run(thread_hop),
        "metrics_middleware_us": anyio.run(middleware, False),
        "metrics_middleware_and_access_log_us": anyio.run(middleware, True),
    }
    return {key: round(value * 1e6, 1) for key, value in pieces.items()}


V2_INFER = "/v2/models/lenet5/infer"
V2_TARGET = 0.6  # binary infer of 256 images against onnxruntime alone at batch 256


def v2_bodies(images: np.ndarray) -> dict[str, tuple[list[bytes], dict[str, str]]]:
    """Inference-protocol bodies of BATCH images each, and their extra headers: the network's
    input as one binary FP32 tensor, the same in JSON, and the PNG files as a binary BYTES
    tensor."""
    import struct

    import orjson

    from training.mnist import prepare

    shape = [BATCH, 1, 32, 32]
    groups = [images[i : i + BATCH] for i in range(0, len(images), BATCH)]
    tensors = [prepare(group) for group in groups]
    header = orjson.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                                       "parameters": {"binary_data_size": tensors[0].nbytes}}],
                           "parameters": {"binary_data_output": True}})  # fmt: skip
    length = {"Inference-Header-Content-Length": str(len(header))}
    json_bodies = [
        orjson.dumps({"inputs": [{"name": "image", "shape": shape, "datatype": "FP32",
                                  "data": tensor.ravel()}]}, option=orjson.OPT_SERIALIZE_NUMPY)
        for tensor in tensors
    ]  # fmt: skip
    uploads = []
    for group in groups:
        framed = b"".join(struct.pack("<I", len(p)) + p for p in map(png, group))
        upload = orjson.dumps({"inputs": [{"name": "upload", "shape": [BATCH], "datatype": "BYTES",
                                           "parameters": {"binary_data_size": len(framed)}}],
                               "parameters": {"binary_data_output": True}})  # fmt: skip
        uploads.append((upload, framed))
    # Every body of a scenario must have the same header length: the script sends one value.
    assert len({len(upload) for upload, _ in uploads}) == 1
    return {
        "v2_binary_256": ([header + tensor.tobytes() for tensor in tensors], length),
        "v2_json_256": (json_bodies, {}),
        "v2_upload_256": (
            [upload + framed for upload, framed in uploads],
            {"Inference-Header-Content-Length": str(len(uploads[0][0]))},
        ),
    }


def v2_pieces(images: np.ndarray, bodies: dict[str, tuple[list[bytes], dict[str, str]]]) -> dict:
    """What /v2's infer does in-process, piece by piece, in microseconds: where the work of a
    request would hold the event loop long enough to be worth a worker thread."""
    import anyio

    from app.inference_protocol import encode_response, parse_request
    from app.predictor import Predictor
    from app.routes import v2
    from app.settings import shipped_model
    from training.mnist import prepare

    predictor = Predictor.load(shipped_model())
    binary, headers = bodies["v2_binary_256"]
    x = prepare(images[:BATCH])
    distances = predictor.run(x)
    outputs = [(v2.OUTPUTS["distances"], distances, True)]

    def parse(body: bytes, header: str | None) -> Any:
        return parse_request(body, header, v2.INPUTS, v2.OUTPUTS, BATCH)

    async def thread_hop(n: int = 2000) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await anyio.to_thread.run_sync(int)
        return (time.perf_counter() - start) / n

    length = headers["Inference-Header-Content-Length"]
    pieces = {
        "parse_binary_256_us": timed(lambda: parse(binary[0], length), 200),
        "parse_json_256_us": timed(lambda: parse(bodies["v2_json_256"][0][0], None), 10),
        "encode_binary_256_us": timed(lambda: encode_response(
            model_name="lenet5", model_version="1", request_id=None, parameters={},
            outputs=outputs), 500),
        "encode_json_256_us": timed(lambda: encode_response(
            model_name="lenet5", model_version="1", request_id=None, parameters={},
            outputs=[(v2.OUTPUTS["distances"], distances, False)]), 200),
        "verdicts_256_us": timed(lambda: predictor.verdicts(distances), 500),
        "thread_hop_us": anyio.run(thread_hop),
    }  # fmt: skip
    for count in (1, 4, 16, 64, 256):
        batch = x[:count]
        pieces[f"onnxruntime_{count}_us"] = timed(lambda b=batch: predictor.run(b), 2000 // count)
    return {key: round(value * 1e6, 1) for key, value in pieces.items()}


# The same server with all of /v2's work on the event loop, for the A/B of the worker thread.
ALL_ON_THE_LOOP = [
    sys.executable,
    "-c",
    "import sys, model.cli, app.routes.v2 as v2; v2.INLINE_IMAGES = v2.INLINE_BODY_BYTES = 1 << 40;"
    " sys.exit(model.cli.main())",
]


def v2_event_loop_figures(work: Path, binary: Scenario, rounds: int) -> dict[str, Any]:
    """What a 256-image infer does to the other requests: GET /health (4 connections) while
    binary infers of 256 images load the server (2 connections), with that work in a worker
    thread (the service) and on the event loop (ALL_ON_THE_LOOP), in alternating rounds."""
    health = Scenario(work, "v2_health_beside", "GET", "/health", "", [])
    rows: dict[str, list[dict[str, Any]]] = {"worker_thread": [], "event_loop": []}
    for _ in range(rounds):
        for mode, launcher in (("worker_thread", None), ("event_loop", ALL_ON_THE_LOOP)):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            server = start_server(port, launcher=launcher)
            try:
                load = subprocess.Popen(
                    ["wrk", "-t1", "-c2", "-d7s", "-s", str(binary.script), url],
                    stdout=subprocess.PIPE, text=True,
                )  # fmt: skip
                time.sleep(1)
                beside = health.run(url, 5, 4, 1, server.pid)
                infers = json.loads(load.communicate(timeout=60)[0].strip().splitlines()[-1])
            finally:
                server.terminate()
                server.wait(timeout=30)
            rows[mode].append({
                "health_requests_per_s": beside["requests_per_s"],
                "health_p50_ms": beside["p50_ms"], "health_p99_ms": beside["p99_ms"],
                "infer_256_requests_per_s": round(
                    infers["requests"] / (infers["duration_us"] / 1e6), 1),
                "errors": beside["errors"] + infers["errors"],
                "loadavg_1min": beside["loadavg_1min"],
            })  # fmt: skip
            print(f"/health beside 256-image infers, work on the {mode}: {rows[mode][-1]}")
    return rows


def v2_figures(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """/v2 infer with BATCH images a request, with 1 and with 4 connections: as one binary FP32
    tensor in --rounds rounds, each beside onnxruntime alone at batch BATCH in this process (one
    thread, the service's session options) seconds apart, the ratio taken within each round;
    the JSON form and the BYTES-upload form once each, beside it."""
    import onnxruntime as ort

    from app.predictor import distances_only, session_options
    from app.settings import shipped_model
    from training.mnist import prepare

    images = mnist_test_images(4 * BATCH)
    bodies = v2_bodies(images)
    scenarios = {
        name: Scenario(work, name, "POST", V2_INFER, "application/octet-stream" if headers
                       else "application/json", data, images_per_request=BATCH, headers=headers)
        for name, (data, headers) in bodies.items()
    }  # fmt: skip
    session = ort.InferenceSession(
        distances_only(shipped_model().read_bytes()), session_options(1),
        providers=["CPUExecutionProvider"],
    )  # fmt: skip
    x = prepare(images[:BATCH])

    def onnxruntime_images_per_s() -> float:
        return round(BATCH / timed(lambda: session.run(["distances"], {"image": x}), 100), 1)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port)
    figures: dict[str, Any] = {}
    try:
        answer = httpx.post(url + V2_INFER, content=bodies["v2_binary_256"][0][0],
                            headers=bodies["v2_binary_256"][1])  # fmt: skip
        assert answer.status_code == 200, answer.text
        for connections in (1, 4):
            rows, ratios = [], []
            for _ in range(args.rounds):
                alone = onnxruntime_images_per_s()
                scenarios["v2_binary_256"].run(url, 1, connections, 1, server.pid)  # warm-up
                row = scenarios["v2_binary_256"].run(url, args.duration, connections, 1,
                                                     server.pid)  # fmt: skip
                row["onnxruntime_images_per_s"] = alone
                rows.append(row)
                ratios.append(round(row["images_per_s"] / alone, 3))
                print(format_row(row), f" onnxruntime {alone:.0f} img/s, ratio {ratios[-1]}",
                      flush=True)  # fmt: skip
            figures[f"v2_binary_256_c{connections}"] = median_round(rows) | {
                "rounds": rows, "ratio_to_onnxruntime": statistics.median(ratios),
                "ratios_by_round": ratios}  # fmt: skip
        for name in ("v2_json_256", "v2_upload_256"):
            scenarios[name].run(url, 1, 1, 1, server.pid)
            figures[name] = scenarios[name].run(url, args.duration * 2, 1, 1, server.pid)
            print(format_row(figures[name]), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    figures["health_beside_infer_256"] = v2_event_loop_figures(
        work, scenarios["v2_binary_256"], max(1, args.rounds // 3)
    )
    figures["pieces_us"] = v2_pieces(images, bodies)
    figures["target"] = V2_TARGET
    return figures


def photo_bodies() -> dict[str, tuple[str, str, list[Any]]]:
    """Each photo scenario's path, content type and samples (bench/speed_inputs.py)."""
    import speed_inputs as inputs

    count = PHOTO_BODIES
    images, labels = mnist_test_images(1000), mnist_test_labels(1000)
    digits = [(images[i], int(labels[i]), i) for i in range(count)]
    return {
        "predict_photo_1mp": ("/predict", "image/jpeg",
                              [inputs.digit_photo(*d[:2], inputs.ONE_MP, d[2]) for d in digits]),
        "predict_photo_12mp": ("/predict", "image/jpeg",
                               [inputs.digit_photo(*d[:2], inputs.TWELVE_MP, d[2])
                                for d in digits]),
        "read_canvas_6_digits": ("/read", "image/png",
                                 [inputs.number_canvas(images, labels, i) for i in range(count)]),
        "read_photo_1mp_6_digits": ("/read", "image/jpeg",
                                    [inputs.number_photo(images, labels, i)
                                     for i in range(count)]),
    }  # fmt: skip


def pieces_per_read(url: str) -> float | None:
    """Candidate pieces scored per /read so far, from /metrics."""
    samples = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        name, _, value = line.partition(" ")
        samples[name] = value
    reads = float(samples.get("lenet5_read_pieces_count", 0))
    return round(float(samples["lenet5_read_pieces_sum"]) / reads, 1) if reads else None


def photo_figures(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """photo_figures_with each number of PHOTO_DECODERS, by that number."""
    bodies = photo_bodies()
    scenarios = {
        name: Scenario(work, name, "POST", path, ctype, [sample.data for sample in samples])
        for name, (path, ctype, samples) in bodies.items()
    }
    return {f"decoders_{n}": photo_figures_with(args, bodies, scenarios, n)
            for n in dict.fromkeys(PHOTO_DECODERS)}  # fmt: skip


def photo_figures_with(
    args: argparse.Namespace,
    bodies: dict[str, tuple[str, str, list[Any]]],
    scenarios: dict[str, Scenario],
    decoders: int,
) -> dict[str, Any]:
    """/predict of phone photos and /read of numbers against a server of `decoders` decoder
    processes, PHOTO_CONNECTIONS clients, in --rounds rounds of --duration s each (the median
    round reported); every body is answered, and whether right counted, before any is timed."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, env={"LENET5_DECODE_WORKERS": str(decoders)})
    figures: dict[str, Any] = {"decode_workers": decoders}
    try:
        answers: dict[str, dict[str, int]] = {}
        for name, (path, ctype, samples) in bodies.items():
            right = 0
            for sample in samples:
                answer = httpx.post(url + path, content=sample.data,
                                    headers={"Content-Type": ctype}, timeout=30)  # fmt: skip
                assert answer.status_code == 200, (name, answer.text)
                body = answer.json()
                right += str(body["digit"] if path == "/predict" else body["text"]) == sample.text
            answers[name] = {"right": right, "of": len(samples)}
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
        for _ in range(args.rounds):
            for name, scenario in scenarios.items():
                scenario.run(url, 1, PHOTO_CONNECTIONS, 1, server.pid)
                row = scenario.run(url, args.duration, PHOTO_CONNECTIONS, 1, server.pid)
                rounds[name].append(row)
                print(format_row(row), f" {decoders} decoder(s)", flush=True)
        for name, rows in rounds.items():
            sizes = [len(sample.data) for sample in bodies[name][2]]
            figures[name] = median_round(rows) | {
                "bytes_median": int(statistics.median(sizes)), "answers": answers[name],
                "target": PHOTO_TARGETS[name], "rounds": rows}  # fmt: skip
        figures["pieces_scored_per_read"] = pieces_per_read(url)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return figures


def print_photos(figures: dict[str, Any]) -> bool:
    """Prints the photo scenarios' verdicts; whether each met its targets without errors with
    the service's default number of decoders."""
    verdicts = [print_photos_with(photos) for photos in figures.values()]
    return verdicts[0]  # PHOTO_DECODERS[0], the default


def print_photos_with(photos: dict[str, Any]) -> bool:
    ok = True
    print(f"with {photos['decode_workers']} decoder process(es):")
    for name, target in PHOTO_TARGETS.items():
        row = photos[name]
        met = row["requests_per_s"] >= target["requests_per_s"] and row["errors"] == 0
        met = met and row["p50_ms"] <= target.get("p50_ms", float("inf"))
        ok = ok and met
        print(
            f"  {name}: {row['requests_per_s']:.1f} req/s, p50 {row['p50_ms']:.1f} ms "
            f"({row['bytes_median'] / 1e6:.2f} MB median body; target {target}) "
            f"{'ok' if met else 'BELOW TARGET'}; answered right "
            f"{row['answers']['right']}/{row['answers']['of']}; CPU per request, server and "
            f"decoders: {row['server_and_decoders_cpu_us_per_request'] / 1e3:.1f} ms; "
            f"load {row['loadavg_1min']}"
        )
    print("  pieces scored per read:", photos["pieces_scored_per_read"])
    return ok


def report_photos(photos: dict[str, Any], out: Path) -> int:
    ok = print_photos(photos)
    write({"photos": photos, "cpus": os.cpu_count(),
           "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, out)  # fmt: skip
    return 0 if ok else 1


def format_row(row: dict[str, Any]) -> str:
    return (
        f"{row['scenario']:<20} {row['requests_per_s']:>9.1f} req/s {row['images_per_s']:>9.1f} "
        f"img/s  p50 {row['p50_ms']:>7.2f} ms  p99 {row['p99_ms']:>7.2f} ms  "
        f"errors {row['errors']}  server CPU {row['server_cpu_us_per_request']:>6.0f} µs/req "
        f"(share {row['server_cpu_share']})  load {row['loadavg_1min']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per timed slice")
    parser.add_argument(
        "--rounds", type=int, default=9, help="interleaved rounds of /health and /predict"
    )
    parser.add_argument("--soak", type=int, default=60, help="seconds of the soak run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default bench/results/service.json (service-v2.json with --v2-only, "
        "service-photos.json with --photos-only)",
    )
    parser.add_argument(
        "--v2-only", action="store_true", help="only the inference protocol's scenarios (/v2)"
    )
    parser.add_argument(
        "--photos-only", action="store_true", help="only the photo and number scenarios"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    results_dir = REPO / "bench" / "results"
    if args.v2_only:
        with tempfile.TemporaryDirectory() as work:
            v2 = v2_figures(args, Path(work))
        return report_v2(v2, args.out or results_dir / "service-v2.json")
    if args.photos_only:
        with tempfile.TemporaryDirectory() as work:
            photos = photo_figures(args, Path(work))
        return report_photos(photos, args.out or results_dir / "service-photos.json")
    args.out = args.out or results_dir / "service.json"
    with tempfile.TemporaryDirectory() as work:
        results, soak, batching, access_log = service_figures(args, Path(work))
        v2 = v2_figures(args, Path(work))
        photos = photo_figures(args, Path(work))
    by_name = {row["scenario"]: row for row in results}
    health = by_name["health"]["rounds"]
    per_round = {
        name: [
            round(row["requests_per_s"] / base["requests_per_s"], 3)
            for row, base in zip(by_name[name]["rounds"], health, strict=True)
        ]
        for name in TARGETS
    }
    ratios = {name: statistics.median(values) for name, values in per_round.items()}
    # The same ratio from the server's CPU time per request: what it would be with the server
    # alone on a core, which a loaded machine does not give.
    cpu_ratios = {
        name: statistics.median(
            round(base["server_cpu_us_per_request"] / row["server_cpu_us_per_request"], 3)
            for row, base in zip(by_name[name]["rounds"], health, strict=True)
        )
        for name in TARGETS
    }
    # The access log's cost: raw /predict with it over raw /predict without, round by round.
    logged_rounds = by_name["predict_raw_access_log"]["rounds"]
    plain_rounds = by_name["predict_raw"]["rounds"]
    log_rounds = [
        round(row["requests_per_s"] / base["requests_per_s"], 3)
        for row, base in zip(logged_rounds, plain_rounds, strict=True)
    ]
    access_log |= {
        "ratio_to_no_access_log": statistics.median(log_rounds),
        "ratio_to_no_access_log_by_round": log_rounds,
        "cpu_ratio_to_no_access_log": statistics.median(
            round(base["server_cpu_us_per_request"] / row["server_cpu_us_per_request"], 3)
            for row, base in zip(logged_rounds, plain_rounds, strict=True)
        ),
    }
    report = {
        "service": results,
        "access_log": access_log,
        "soak": soak,
        "dynamic_batching": batching,
        "ratios_to_health": ratios,
        "ratios_to_health_by_round": per_round,
        "cpu_ratios_to_health": cpu_ratios,
        "targets": TARGETS,
        "onnxruntime": onnxruntime_figures(),
        "request_pieces_us": request_pieces(),
        "v2": v2,
        "photos": photos,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print()
    for name, ratio in ratios.items():
        verdict = "ok" if ratio >= TARGETS[name] else "BELOW TARGET"
        print(
            f"{name} / health = {ratio:.3f} (target ≥ {TARGETS[name]}) {verdict}; "
            f"by server CPU per request {cpu_ratios[name]:.3f}; rounds {per_round[name]}"
        )
    print("access log:", json.dumps(access_log))
    print("dynamic batching:", json.dumps(batching))
    print("onnxruntime:", json.dumps(report["onnxruntime"]))
    print("request pieces (µs):", json.dumps(report["request_pieces_us"]))
    v2_ok = print_v2(v2)
    photos_ok = print_photos(photos)
    write(report, args.out)
    ok = all(r >= TARGETS[n] for n, r in ratios.items()) and soak["errors"] == 0
    return 0 if ok and v2_ok and photos_ok and soak["rss_growth"] < 0.1 else 1


def print_v2(v2: dict[str, Any]) -> bool:
    """Prints the /v2 verdicts; whether the binary form met its target at every concurrency."""
    ok = True
    for connections in (1, 4):
        row = v2[f"v2_binary_256_c{connections}"]
        ratio = row["ratio_to_onnxruntime"]
        ok = ok and ratio >= V2_TARGET and row["errors"] == 0
        verdict = "ok" if ratio >= V2_TARGET else "BELOW TARGET"
        print(
            f"v2 binary 256 ({connections} connection(s)) / onnxruntime batch 256 = {ratio:.3f} "
            f"(target ≥ {V2_TARGET}) {verdict}; rounds {row['ratios_by_round']}"
        )
    print("v2 pieces (µs):", json.dumps(v2["pieces_us"]))
    return ok


def report_v2(v2: dict[str, Any], out: Path) -> int:
    ok = print_v2(v2)
    write({"v2": v2, "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, out)
    return 0 if ok else 1


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    sys.exit(main())
