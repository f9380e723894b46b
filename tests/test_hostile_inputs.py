"""Hostile uploads and connections: each hurts only its own request.

The latency bounds are generous (a test, not a benchmark: bench/hostile.py measures); what
they catch is a decode on the event loop, which holds /health for a second or more.
"""

import io
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.protocol import GuardedHttpToolsProtocol
from app.settings import Settings
from model.spec import InputSpec

BOUNDARY = "hostileboundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
HEALTH_BOUND = 0.5  # seconds; the service's target is 0.25 s under bench/hostile.py


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def multipart(files: list[bytes], field: str = "files") -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{i}"'
        "\r\n\r\n".encode()
        + data
        + b"\r\n"
        for i, data in enumerate(files)
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture(scope="module")
def pngs(mnist_test) -> list[bytes]:
    return [encoded(Image.fromarray(image), "PNG") for image in mnist_test[0][:31]]


@pytest.fixture(scope="module")
def int32_tiff(mnist_test) -> bytes:
    """An MNIST digit as a TIFF of 32-bit integers far beyond 16 bits (mode I)."""
    return encoded(Image.fromarray(mnist_test[0][0].astype(np.int32) * 4000), "TIFF")


@pytest.fixture(scope="module")
def heavy_webp() -> bytes:
    """1.6 KB of lossless WebP that decodes to 6324×6324 pixels, under the pixel limit."""
    return encoded(Image.new("L", (6324, 6324), 255), "WEBP", lossless=True)


@pytest.fixture(scope="module")
def webp_at_limit(mnist_test) -> bytes:
    """The largest square lossless WebP the default memory allowance decodes, with a digit."""
    side = 2800
    canvas = Image.new("L", (side, side), 0)
    canvas.paste(Image.fromarray(mnist_test[0][0]).resize((side // 2, side // 2)), (side // 4,) * 2)
    return encoded(canvas, "WEBP", lossless=True)


@contextmanager
def health_probe(client: TestClient) -> Iterator[list[float]]:
    """/health polled from another thread while the block runs; its latencies in seconds."""
    latencies: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.01)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join()


def test_int32_tiff_among_concurrent_predicts_fails_no_neighbour(
    client: TestClient, pngs: list[bytes], int32_tiff: bytes
) -> None:
    def post(body: bytes) -> int:
        return client.post(
            "/predict", content=body, headers={"Content-Type": "image/png"}
        ).status_code

    with ThreadPoolExecutor(32) as pool:
        for _ in range(3):
            neighbours = [pool.submit(post, body) for body in pngs]
            tiff = client.post(
                "/predict", content=int32_tiff, headers={"Content-Type": "image/tiff"}
            )
            assert [job.result() for job in neighbours] == [200] * len(pngs)
            assert tiff.status_code == 200, tiff.text
            assert tiff.json()["digit"] == 7  # MNIST test digit 0, read through mode I


def test_int32_tiff_in_a_batch_is_read_beside_the_others(
    client: TestClient, pngs: list[bytes], int32_tiff: bytes
) -> None:
    answer = client.post(
        "/predict/batch",
        content=multipart([pngs[0], int32_tiff, pngs[1]]),
        headers={"Content-Type": MULTIPART},
    )
    assert answer.status_code == 200
    assert [result["digit"] for result in answer.json()["results"]] == [7, 7, 2]


def test_a_bug_reading_one_upload_is_its_own_500(
    client: TestClient, pngs: list[bytes], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    import app.imaging

    real = app.imaging.read_digit

    def broken(ink: app.imaging.Ink, spec: InputSpec) -> tuple[np.ndarray, list[int]]:
        if ink.ink.shape == (57, 57):
            raise RuntimeError("a bug in framing")
        return real(ink, spec)

    # Inline uploads are read in this process: the bug is planted here.
    monkeypatch.setattr(app.imaging, "read_digit", broken)
    odd = encoded(Image.fromarray(255 - np.eye(57, dtype=np.uint8) * 255), "PNG")
    with ThreadPoolExecutor(8) as pool:
        jobs = [
            pool.submit(
                client.post, "/predict", content=body, headers={"Content-Type": "image/png"}
            )
            for body in [odd, *pngs[:7]]
        ]
        statuses = [job.result().status_code for job in jobs]
    assert statuses == [500] + [200] * 7
    assert "bug while reading an upload of" in caplog.text and "(PNG)" in caplog.text


def test_heavy_webp_is_refused_from_its_header_without_stalling_health(
    client: TestClient, heavy_webp: bytes
) -> None:
    with health_probe(client) as latencies:
        answers = [
            client.post("/predict", content=heavy_webp, headers={"Content-Type": "image/webp"})
            for _ in range(3)
        ]
    assert {answer.status_code for answer in answers} == {413}
    assert "MiB" in answers[0].json()["detail"]
    assert latencies and max(latencies) < HEALTH_BOUND


def test_webp_at_the_memory_limit_decodes_off_the_event_loop(
    client: TestClient, webp_at_limit: bytes
) -> None:
    with health_probe(client) as latencies:
        answers = [
            client.post("/predict", content=webp_at_limit, headers={"Content-Type": "image/webp"})
            for _ in range(3)
        ]
    assert [answer.status_code for answer in answers] == [200] * 3
    assert answers[0].json()["digit"] == 7
    assert len(latencies) > 10 and max(latencies) < HEALTH_BOUND


def test_rgba_png_at_the_memory_limit_decodes_off_the_event_loop(client: TestClient) -> None:
    heavy = encoded(Image.new("RGBA", (4000, 4000), (255, 255, 255, 0)), "PNG")
    with health_probe(client) as latencies:
        answer = client.post("/predict", content=heavy, headers={"Content-Type": "image/png"})
    assert answer.status_code == 422  # read in full, and blank
    assert max(latencies) < HEALTH_BOUND


def pool_processes(client: TestClient) -> list[int]:
    executor = client.app.state.service.pool._executor  # type: ignore[attr-defined]
    return [process.pid for process in executor._processes.values()]


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_four_parallel_heavy_batches_stay_within_the_decoders_memory(
    client: TestClient, webp_at_limit: bytes
) -> None:
    body = multipart([webp_at_limit])
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: client.post(
                    "/predict/batch", content=body, headers={"Content-Type": MULTIPART}
                ),
                range(4),
            )
        )
    assert [answer.json()["results"][0]["digit"] for answer in answers] == [7] * 4
    settings = client.app.state.service.settings  # type: ignore[attr-defined]
    for pid in pool_processes(client):
        # One decode at a time per process, each within its allowance, over the process's own.
        assert peak_rss_kib(pid) * 1024 < settings.decode_memory_bytes + 100 * 2**20


def test_a_full_decoder_queue_answers_503_with_retry_after(
    service_settings: Settings, webp_at_limit: bytes
) -> None:
    settings = service_settings.model_copy(update={"decode_queue": 0})
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(3) as pool:
        jobs = [
            pool.submit(
                client.post,
                "/predict",
                content=webp_at_limit,
                headers={"Content-Type": "image/webp"},
            )
            for _ in range(3)
        ]
        answers = [job.result() for job in jobs]
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] == 200 and 503 in statuses
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.headers["Retry-After"] == "1" and "busy" in busy.json()["detail"]


def test_a_60_mb_part_header_is_refused_without_stalling_health(
    service_settings: Settings,
) -> None:
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; x="'.encode()
        + b"a" * 60_000_000
        + b'"\r\n\r\nxx\r\n'
        + f"--{BOUNDARY}--\r\n".encode()
    )
    roomy = service_settings.model_copy(
        update={"max_batch_bytes": 64 * 2**20, "max_body_memory_bytes": 128 * 2**20}
    )
    with TestClient(create_app(roomy)) as client, health_probe(client) as latencies:
        answer = client.post("/predict/batch", content=body, headers={"Content-Type": MULTIPART})
    assert answer.status_code == 413
    assert "headers exceed 8192 bytes" in answer.json()["detail"]
    assert max(latencies) < HEALTH_BOUND


def test_a_60_mb_body_is_refused_by_default_before_it_is_read(client: TestClient) -> None:
    answer = client.post("/predict/batch", content=b"x" * 60_000_000,
                         headers={"Content-Type": MULTIPART})  # fmt: skip
    assert answer.status_code == 413 and answer.headers["Connection"] == "close"


def test_too_many_parts_are_refused(client: TestClient, pngs: list[bytes]) -> None:
    answer = client.post(
        "/predict", content=multipart([pngs[0]] * 17, "file"), headers={"Content-Type": MULTIPART}
    )
    assert answer.status_code == 413 and "more than 16 parts" in answer.json()["detail"]


# Connection-level cases, against a real uvicorn with the service's protocol.


class ShortLimits(GuardedHttpToolsProtocol):
    max_header_bytes = 4096
    header_timeout = 1.0
    body_timeout = 1.0
    max_connections = 20


@pytest.fixture(scope="module")
def server(service_settings: Settings) -> Iterator[tuple[int, object]]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(service_settings)
    config = uvicorn.Config(app, http=ShortLimits, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield port, app
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def exchange(port: int, request: bytes, wait: float = 3) -> tuple[bytes, bool]:
    """The server's answer to `request` and whether it then closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(request)
        data = b""
        try:
            while piece := sock.recv(65536):
                data += piece
            return data, True
        except TimeoutError:
            return data, False


def health(port: int) -> bytes:
    return exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0]


def test_a_silent_connection_is_closed_after_the_header_timeout(server) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        start = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, with nothing sent
        assert 0.8 < time.monotonic() - start < 3


def test_a_stalled_body_is_cut_after_the_body_timeout(server) -> None:
    port, _ = server
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100"
    head += b"\r\n\r\n"
    answer, closed = exchange(port, head + b"x" * 10, wait=5)
    assert closed and answer == b""
    assert health(port).startswith(b"HTTP/1.1 200")


def test_an_endless_header_is_refused_with_json_431(server) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Long: ")
        with pytest.raises(OSError):  # the server closes while the header is still coming
            for _ in range(1000):
                sock.sendall(b"a" * 65536)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431") and b"application/json" in answer
    assert b'"detail"' in answer


def test_connections_over_the_cap_close_the_longest_idle(server) -> None:
    port, _ = server
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
    try:
        assert health(port).startswith(b"HTTP/1.1 200")
        idle[0].settimeout(2)
        assert idle[0].recv(1) == b""  # the oldest idle one made room
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", b"GARBAGE\r\n\r\n"],
    ids=["bad_content_length", "bad_request_line"],
)
def test_parser_errors_are_json_400(server, request_bytes: bytes) -> None:
    port, _ = server
    answer, closed = exchange(port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head
    assert b"invalid HTTP request" in body and closed


def test_a_declared_too_large_body_is_refused_and_the_connection_closed(server) -> None:
    port, _ = server
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        b"Content-Length: 999999999\r\n\r\n"
    )
    answer, closed = exchange(port, head)
    assert answer.startswith(b"HTTP/1.1 413") and closed


def test_a_client_leaving_a_heavy_batch_drops_its_queued_decodes(
    server, webp_at_limit: bytes
) -> None:
    port, app = server
    body = multipart([webp_at_limit] * 8)
    head = (
        f"POST /predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    pids = [p.pid for p in app.state.service.pool._executor._processes.values()]  # type: ignore[attr-defined]

    def cpu() -> float:
        total = 0.0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / 100
        return total

    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        time.sleep(0.5)
    # A running decode may finish; the seven queued behind it never start.
    time.sleep(1.5)
    before = cpu()
    time.sleep(1.5)
    assert cpu() - before < 0.3
    assert health(port).startswith(b"HTTP/1.1 200")


# Model files: metadata of the right keys and the wrong types.


def architecture_with(rbf_bitmaps: object) -> dict:
    import json

    import onnx

    shipped = Path(__file__).resolve().parent.parent / "model" / "lenet5.onnx"
    props = {p.key: p.value for p in onnx.load(str(shipped)).metadata_props}
    return json.loads(props["lenet5.architecture"]) | {"rbf_bitmaps": rbf_bitmaps}


WRONG_TYPES = {
    "rbf_bitmaps_a_list": {"lenet5.architecture": architecture_with([])},
    "digits_an_int": {"lenet5.architecture": architecture_with({"digits": 10})},
    "score_a_list": {"lenet5.rejection": {"score": ["min_distance"], "threshold": 84.0}},
}


@pytest.mark.parametrize("metadata", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_reload_refuses_metadata_of_wrong_types_with_409(
    tmp_path: Path, shipped_model: Path, model_variant, metadata: dict
) -> None:
    path = tmp_path / "lenet5.onnx"
    path.write_bytes(shipped_model.read_bytes())
    settings = Settings(model_path=path, reload_token="sesame")
    with TestClient(create_app(settings)) as client:
        path.write_bytes(model_variant("wrong", metadata).read_bytes())
        answer = client.post("/model/reload", headers={"Authorization": "Bearer sesame"})
        assert answer.status_code == 409, answer.text
        assert "still serving" in answer.json()["detail"]
        assert client.get("/ready").status_code == 200
        metrics = client.get("/metrics").text
    assert 'lenet5_model_reloads_total{result="refused"} 1.0' in metrics


def test_a_refused_sighup_reload_is_logged_and_counted(
    tmp_path: Path, shipped_model: Path, model_variant, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import gc
    import os
    import signal

    from app.main import lifespan

    path = tmp_path / "lenet5.onnx"
    path.write_bytes(shipped_model.read_bytes())
    app = create_app(Settings(model_path=path))
    service = app.state.service

    async def scenario() -> None:
        async with lifespan(app):  # in the main thread, as under uvicorn
            serving = service.predictor
            path.write_bytes(model_variant("wrong", WRONG_TYPES["score_a_list"]).read_bytes())
            refused = service.metrics.reloads.labels("refused")
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(400):
                await asyncio.sleep(0.025)
                if refused._value.get() == 1:
                    break
            assert refused._value.get() == 1
            assert service.predictor is serving

    asyncio.run(scenario())
    gc.collect()  # an unretrieved task exception is reported when the task is collected
    assert "reload refused, still serving" in caplog.text
    assert "Task exception was never retrieved" not in caplog.text


def test_a_killed_decoder_fails_only_its_upload_and_is_replaced(
    service_settings: Settings, webp_at_limit: bytes
) -> None:
    import os
    import signal

    with TestClient(create_app(service_settings)) as client:
        webp = {"Content-Type": "image/webp"}
        (pid,) = pool_processes(client)
        killer = threading.Timer(0.1, os.kill, [pid, signal.SIGKILL])
        killer.start()
        answer = client.post("/predict", content=webp_at_limit, headers=webp)
        killer.join()
        assert answer.status_code == 500 and "decoder process died" in answer.json()["detail"]
        assert client.post("/predict", content=webp_at_limit, headers=webp).status_code == 200
        (new,) = pool_processes(client)
        assert new != pid
        os.kill(new, signal.SIGKILL)  # dead between two jobs: the next one is not failed for it
        time.sleep(0.5)
        assert client.post("/predict", content=webp_at_limit, headers=webp).status_code == 200


def test_the_connection_cap_stays_below_the_open_file_limit() -> None:
    import resource

    from app import protocol

    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    before = protocol.GuardedHttpToolsProtocol.max_connections
    try:
        protocol.configured(16384, 10, 10, max_connections=files * 2)
        assert protocol.GuardedHttpToolsProtocol.max_connections == files - protocol.SPARE_FILES
    finally:
        protocol.GuardedHttpToolsProtocol.max_connections = before
