"""Shared fixtures: the real MNIST files (from LENET5_TEST_DATA_DIR, else ../shared/data/mnist),
the service, and the feedback stores (SQLite in a temporary directory; a real PostgreSQL server
started for the session)."""

import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("LENET5_TEST_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
SHIPPED_MODEL = REPO / "model" / "lenet5.onnx"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST files not found in {MNIST_DIR}; set LENET5_TEST_DATA_DIR")
    return MNIST_DIR


def read_split(mnist_dir: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Real MNIST digits (uint8 28×28, white on black) and labels, md5-checked."""
    from training.mnist import read_idx

    images = read_idx(mnist_dir / f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte")
    labels = read_idx(mnist_dir / f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels-idx1-ubyte")
    return images, labels.astype(np.int64)


@pytest.fixture(scope="session")
def mnist_test(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real MNIST test digits and their labels."""
    return read_split(mnist_dir, "t10k")


@pytest.fixture(scope="session")
def mnist_train(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 real MNIST training digits and their labels."""
    return read_split(mnist_dir, "train")


def _fresh_python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def fresh_python() -> Callable[[str], subprocess.CompletedProcess[str]]:
    """fresh_python(script): run `script` in a new interpreter from the project root, to see
    what importing something loads; the finished process, its output captured."""
    return _fresh_python


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    return SHIPPED_MODEL


@pytest.fixture(scope="session")
def service_settings(shipped_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """Settings of a service on the shipped model, one onnxruntime thread, reloading allowed,
    feedback kept in a SQLite store of its own."""
    from app.settings import Settings

    return Settings(
        model_path=shipped_model,
        threads=1,
        reload_token="test-token",
        feedback_db=tmp_path_factory.mktemp("feedback"),
    )


@pytest.fixture(scope="session")
def postgres_bin() -> Path:
    """Where Debian's PostgreSQL server binaries are (CI installs them). Without them the
    PostgreSQL cases are skipped, except under CI, where they fail."""
    from postgres import bindir

    found = bindir()
    if found is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="session")
def postgres(postgres_bin: Path) -> Iterator:
    """A real PostgreSQL server for the session."""
    from postgres import Cluster

    with Cluster(postgres_bin) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None for a fresh SQLite store in tmp_path (the default), or the URL of a fresh
    PostgreSQL database on the session's server."""
    if request.param == "sqlite":
        return None
    cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"t{os.urandom(6).hex()}")


@pytest.fixture(scope="module")
def client(service_settings) -> Iterator:
    """A TestClient of a fresh app, its lifespan running (the model loaded)."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(service_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def server_url(service_settings) -> Iterator[str]:
    """A fresh app served by uvicorn on a free loopback port, in a thread, for clients that speak
    real HTTP (a browser, the inference protocol's clients): its base URL."""
    import uvicorn

    from app.main import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound before the server starts: no race for the port
    config = uvicorn.Config(create_app(service_settings), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the service did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def _encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def encode() -> Callable[..., bytes]:
    """encode(image, fmt="PNG", **save_params): an array or PIL image as the bytes of a file."""
    return _encode


@pytest.fixture(scope="session")
def scan_png() -> Callable[[np.ndarray, int], bytes]:
    """scan_png(digit, side): an MNIST digit scanned at `side` px (training.photos.small_scan)
    and enlarged ×6 by repeating its pixels, as a viewer zooms it, as a PNG."""
    from training.photos import small_scan

    def scan(digit: np.ndarray, side: int) -> bytes:
        return _encode(np.kron(np.asarray(small_scan(digit, side)), np.ones((6, 6), np.uint8)))

    return scan


@pytest.fixture(scope="session")
def model_variant(shipped_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable:
    """model_variant(name, metadata={key: value}, rename={old: new}): a copy of the shipped model
    with its metadata (JSON-encoded; None drops the key, bytes are stored as they are) or its
    output names changed, as a new file."""
    import json

    import onnx

    original = onnx.load(str(shipped_model))
    folder = tmp_path_factory.mktemp("models")

    def make(name: str, metadata: dict | None = None, rename: dict | None = None) -> Path:
        model = onnx.ModelProto()
        model.CopyFrom(original)
        props = {p.key: p.value for p in model.metadata_props}
        for key, value in (metadata or {}).items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value.decode() if isinstance(value, bytes) else json.dumps(value)
        del model.metadata_props[:]
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
        for old, new in (rename or {}).items():
            for node in model.graph.node:
                node.output[:] = [new if o == old else o for o in node.output]
                node.input[:] = [new if i == old else i for i in node.input]
            for output in model.graph.output:
                if output.name == old:
                    output.name = new
        path = folder / f"{name}.onnx"
        onnx.save(model, str(path))
        return path

    return make
