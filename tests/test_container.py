"""The Docker image, built and run for real: it answers a real MNIST digit, as a non-root user.

Needs a Docker engine. Where none answers and ../shared/container/docker-standin is there (this
project's machines reach no container registry), that script starts one and builds a local
python:3.11-slim first; elsewhere the local Docker is used. Without an engine the tests are
skipped, or fail under CI=true, where a skipped image check would pass unnoticed.
"""

import io
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.container

REPO = Path(__file__).resolve().parent.parent
STANDIN = REPO.parent / "shared" / "container" / "docker-standin"
IMAGE = "lenet5:test"
WORKERS = 2
# What the Deployment gives a pod: a read-only root with a writable /tmp.
RUN_LIKE_K8S = ["--read-only", "--tmpfs", "/tmp"]


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def engine_answers() -> bool:
    return shutil.which("docker") is not None and docker("info").returncode == 0


@pytest.fixture(scope="module")
def engine() -> None:
    if engine_answers():
        return
    why = "no Docker engine answers `docker info`"
    if STANDIN.exists():
        up = subprocess.run([str(STANDIN), "up"], capture_output=True, text=True, check=False)
        if engine_answers():
            return
        why += f" and `{STANDIN.name} up` failed: {up.stderr[-2000:]}"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def image(engine: None) -> str:
    build = docker("build", "-t", IMAGE, str(REPO), timeout=1800)
    assert build.returncode == 0, build.stdout[-5000:] + build.stderr[-5000:]
    return IMAGE


@pytest.fixture(scope="module")
def server(image: str) -> Iterator[tuple[str, str]]:
    """The running container's name and base URL, on a free loopback port Docker picks."""
    name = f"lenet5-test-{uuid.uuid4().hex[:12]}"
    try:
        run = docker(
            "run", "-d", "--name", name, "-p", "127.0.0.1::8000", *RUN_LIKE_K8S,
            "-e", f"LENET5_WORKERS={WORKERS}", "--health-interval", "2s", image,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        host_port = docker("port", name, "8000/tcp").stdout.split()[0]
        url = f"http://{host_port}"
        wait_until_ready(name, url)
        yield name, url
    finally:
        docker("rm", "-f", name)


def wait_until_ready(name: str, url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(0.5)
    logs = docker("logs", name)
    pytest.fail(f"{name} not ready at {url}/ready:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def test_predicts_real_mnist_digits(
    server: tuple[str, str], mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    _, url = server
    images, labels = mnist_test
    for image, label in zip(images[:10], labels[:10], strict=True):
        answer = httpx.post(
            f"{url}/predict", content=png(image), headers={"Content-Type": "image/png"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["digit"] == label
        assert len(answer.json()["distances"]) == 10


def test_predict_takes_a_multipart_upload(
    server: tuple[str, str], mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    _, url = server
    images, labels = mnist_test
    files = {"file": ("digit.png", png(images[0]), "image/png")}
    answer = httpx.post(f"{url}/predict", files=files, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["digit"] == labels[0]


def test_feedback_is_kept_in_sqlite_on_the_data_volume(
    server: tuple[str, str], mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    name, url = server
    images, labels = mnist_test
    files = {"file": ("digit.png", png(images[1]), "image/png")}
    label = str(labels[1])
    answer = httpx.post(f"{url}/feedback", files=files, data={"label": label}, timeout=10)
    assert answer.status_code == 201, answer.text
    assert answer.json()["label"] == label
    listing = docker("exec", name, "ls", "/data")
    assert "feedback.sqlite3" in listing.stdout.split()
    volumes = docker("inspect", "-f", "{{range .Mounts}}{{.Destination}} {{end}}", name)
    assert "/data" in volumes.stdout.split()  # a volume, not the container's own layer


def test_server_processes_are_not_root(server: tuple[str, str]) -> None:
    name, _ = server
    top = docker("top", name, "-eo", "pid,uid,args")  # docker top needs the pid column
    assert top.returncode == 0, top.stderr
    uids = [line.split()[1] for line in top.stdout.splitlines()[1:]]
    assert uids
    assert "0" not in uids, top.stdout
    assert docker("exec", name, "id", "-u").stdout.strip() != "0"


def test_workers_come_from_the_environment(server: tuple[str, str]) -> None:
    name, _ = server
    # -ww: without a terminal ps cuts lines at 80 columns, before the worker's marker.
    top = docker("top", name, "-ww", "-eo", "pid,args").stdout
    assert top.count("--multiprocessing-fork") == WORKERS, top


def test_healthcheck_reports_healthy(server: tuple[str, str]) -> None:
    name, _ = server
    deadline = time.monotonic() + 60
    status = ""
    while time.monotonic() < deadline:
        status = docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
        if status == "healthy":
            return
        time.sleep(1)
    pytest.fail(f"health status {status!r} after 60 s")


def test_image_has_no_torch_and_no_compiler(image: str) -> None:
    probe = (
        "import importlib.util, shutil; "
        "print(importlib.util.find_spec('torch'), [c for c in ('gcc', 'cc', 'g++', 'clang') "
        "if shutil.which(c)])"
    )
    found = docker("run", "--rm", image, "python", "-c", probe)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "None []"
