"""Serving a new model without downtime: POST /model/reload, SIGHUP, and the command line."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.predictor import Predictor
from app.service import lifespan
from app.settings import Settings
from model.cli import main as lenet5

TOKEN = {"Authorization": "Bearer sesame"}
PNG = {"Content-Type": "image/png"}


@pytest.fixture
def model_file(tmp_path: Path, shipped_model: Path) -> Path:
    """A copy of the shipped model that a test may replace."""
    path = tmp_path / "lenet5.onnx"
    shutil.copyfile(shipped_model, path)
    return path


@pytest.fixture
def newer(model_variant) -> Path:
    return model_variant("newer", {"lenet5.version": "newer"})


def replace(target: Path, source: Path | bytes) -> None:
    """Atomically, as `lenet5 export` does."""
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(source if isinstance(source, bytes) else source.read_bytes())
    os.replace(tmp, target)


@pytest.fixture
def reloadable(model_file: Path) -> Iterator[TestClient]:
    settings = Settings(model_path=model_file, reload_token="sesame")
    with TestClient(create_app(settings)) as client:
        yield client


def test_reload_is_off_without_a_token(client: TestClient, shipped_model: Path) -> None:
    with TestClient(create_app(Settings(model_path=shipped_model))) as off:
        answer = off.post("/model/reload", headers=TOKEN)
    assert answer.status_code == 403
    assert "LENET5_RELOAD_TOKEN" in answer.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "x"}])
def test_reload_needs_the_right_bearer_token(reloadable: TestClient, headers: dict) -> None:
    answer = reloadable.post("/model/reload", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_reload_serves_the_new_file(
    reloadable: TestClient, model_file: Path, newer: Path, mnist_test, encode
) -> None:
    before = reloadable.get("/ready").json()
    replace(model_file, newer)
    answer = reloadable.post("/model/reload", headers=TOKEN)
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == "newer" and answer.json()["changed"] is True
    assert answer.json()["previous_sha256"] == before["sha256"]
    prediction = reloadable.post("/predict", content=encode(mnist_test[0][0]), headers=PNG).json()
    assert prediction["version"] == "newer" and prediction["sha256"] == answer.json()["sha256"]
    assert reloadable.get("/model").json()["version"] == "newer"
    assert 'lenet5_model_reloads_total{result="ok"} 1.0' in reloadable.get("/metrics").text


def test_reload_of_an_unchanged_file_says_so(reloadable: TestClient) -> None:
    assert reloadable.post("/model/reload", headers=TOKEN).json()["changed"] is False


@pytest.mark.parametrize("bad", ["junk", "renamed", "no_rejection", "bitmaps_list", "digits_int"])
def test_reload_refuses_an_invalid_file_and_keeps_serving(
    reloadable: TestClient, model_file: Path, model_variant, bad: str, mnist_test, encode
) -> None:
    before = reloadable.get("/ready").json()
    replace(model_file, {
        "junk": b"not a model",
        "renamed": model_variant("renamed", rename={"distances": "scores"}),
        "no_rejection": model_variant("no_rejection", {"lenet5.rejection": None}),
        # The right keys with the wrong types.
        "bitmaps_list": model_variant("bitmaps_list", {"lenet5.rbf_bitmaps": [[1, -1]]}),
        "digits_int": model_variant("digits_int", {"lenet5.rbf_bitmaps": {
            "width": 7, "height": 12, "digits": 10}}),
    }[bad])  # fmt: skip
    answer = reloadable.post("/model/reload", headers=TOKEN)
    assert answer.status_code == 409
    assert f"still serving {before['version']}" in answer.json()["detail"]
    assert reloadable.get("/ready").json() == before
    prediction = reloadable.post("/predict", content=encode(mnist_test[0][0]), headers=PNG)
    assert prediction.status_code == 200 and prediction.json()["sha256"] == before["sha256"]
    assert 'lenet5_model_reloads_total{result="refused"} 1.0' in reloadable.get("/metrics").text


def test_requests_in_flight_during_reloads_all_succeed(
    reloadable: TestClient, model_file: Path, shipped_model: Path, newer: Path, mnist_test, encode
) -> None:
    uploads = [encode(image) for image in mnist_test[0][:10]]
    # Both files have the same weights: every answer must stay the same across the reloads.
    expected = [
        reloadable.post("/predict", content=u, headers=PNG).json()["digit"] for u in uploads
    ]
    shas = {reloadable.get("/ready").json()["sha256"]}
    failures: list[str] = []
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            for upload, digit in zip(uploads, expected, strict=True):
                answer = reloadable.post("/predict", content=upload, headers=PNG)
                if answer.status_code != 200 or answer.json()["digit"] != digit:
                    failures.append(answer.text)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for source in [newer, shipped_model] * 3:
            replace(model_file, source)
            answer = reloadable.post("/model/reload", headers=TOKEN)
            assert answer.status_code == 200
            shas.add(answer.json()["sha256"])
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert not failures
    assert len(shas) == 2


async def sighup_until(done: Callable[[], bool]) -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(400):
        await asyncio.sleep(0.025)
        if done():
            return
    raise AssertionError("SIGHUP did not reload")


def test_sighup_reloads_the_model_and_the_handler_is_restored(
    model_file: Path, newer: Path, model_variant
) -> None:
    app = create_app(Settings(model_path=model_file))
    service = app.state.service
    before = signal.getsignal(signal.SIGHUP)

    async def scenario() -> None:
        async with lifespan(app):  # in the main thread, as under uvicorn
            old = service.predictor
            replace(model_file, newer)
            await sighup_until(lambda: service.predictor is not old)
            assert service.predictor.version == "newer"
            serving = service.predictor
            replace(model_file, model_variant("bad", rename={"c1": "conv1"}))
            refused = service.metrics.reloads.labels("refused")
            await sighup_until(lambda: refused._value.get() == 1)
            assert service.predictor is serving

    asyncio.run(scenario())
    assert signal.getsignal(signal.SIGHUP) == before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_lenet5_serve_runs_uvicorn_and_reloads_on_sighup(
    model_file: Path, newer: Path, mnist_test, encode, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # To a file, not a pipe: the server's own exit is what is waited for, not that of every
    # process that inherited its stdout.
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "model.cli",
            "serve",
            "--port",
            str(port),
            "--model",
            str(model_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = wait_ready(url, server)
        answer = httpx.post(f"{url}/predict", content=encode(mnist_test[0][0]), headers=PNG)
        assert answer.json()["digit"] == mnist_test[1][0]
        replace(model_file, newer)
        server.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ready").json()["sha256"] == ready["sha256"]:
            assert time.monotonic() < deadline, "no reload after SIGHUP"
            time.sleep(0.1)
        assert httpx.get(f"{url}/ready").json()["version"] == "newer"
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    output = (tmp_path / "server.log").read_text()
    # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
    assert server.returncode in (0, -signal.SIGTERM), output
    assert "serving model newer" in output and "Application shutdown complete" in output


def wait_ready(url: str, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0]
        try:
            answer = httpx.get(f"{url}/ready", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready")


def test_lenet5_predict_prints_each_file_and_names_the_bad_ones(
    tmp_path: Path, mnist_test, encode, shipped_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = mnist_test[0]
    good = [tmp_path / "a.png", tmp_path / "b.jpg"]
    good[0].write_bytes(encode(images[0]))
    good[1].write_bytes(encode(255 - np.kron(images[1], np.ones((8, 8), np.uint8)), "JPEG"))
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    status = lenet5(["predict", str(good[0]), str(junk), str(tmp_path / "gone.png"), str(good[1])])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == [str(good[0]), str(good[1])]
    predictor = Predictor.load(shipped_model)
    digits = [predictor.predict(path.read_bytes())["digit"] for path in good]
    assert lines[0].startswith(f"{good[0]}: {digits[0]}  distances 0:")
    assert lines[1].startswith(f"{good[1]}: {digits[1]}")
    assert f"{junk}: error: the upload is not an image" in err
    assert "gone.png: error: No such file or directory" in err


def test_lenet5_predict_refuses_a_bad_model(tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    assert lenet5(["predict", "--model", str(junk), str(junk)]) == 2
    assert "not a loadable ONNX model" in capsys.readouterr().err
