"""POST /feedback and its reading routes, on SQLite and on a real PostgreSQL server."""

import base64
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from app.feedback import dataset
from app.main import create_app
from app.schemas import FeedbackPage, FeedbackStats, FeedbackStored
from app.settings import Settings
from model.cli import main as lenet5

TOKEN = {"Authorization": "Bearer sesame"}


def settings_for(shipped_model: Path, folder: Path, url: str | None, **more) -> Settings:
    return Settings(
        model_path=shipped_model,
        threads=1,
        reload_token="sesame",
        feedback_db=folder,
        feedback_url=url,
        **more,
    )


@pytest.fixture
def api(shipped_model: Path, tmp_path: Path, store_url: str | None) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(shipped_model, tmp_path, store_url))) as client:
        yield client


@pytest.fixture
def digits(mnist_test, encode: Callable[..., bytes]) -> list[tuple[bytes, int, np.ndarray]]:
    """Eight real test digits as 28×28 PNGs, their labels and pixels."""
    images, labels = mnist_test
    return [(encode(images[i]), int(labels[i]), images[i]) for i in range(8)]


def send(client: TestClient, image: bytes, label: str, **fields: str):
    data = {"label": label, **fields}
    return client.post("/feedback", files={"file": ("digit.png", image, "image/png")}, data=data)


def test_feedback_stores_a_correction_and_answers_its_id(api: TestClient, digits) -> None:
    image, label, _ = digits[0]
    answer = send(api, image, str(label), predicted="1", version="2026.11.22", source="test")
    assert answer.status_code == 201, answer.text
    stored = FeedbackStored.model_validate(answer.json())
    assert (stored.duplicate, stored.label) == (False, str(label))
    stats = FeedbackStats.model_validate(api.get("/feedback/stats").json())
    assert stats.by_label == {str(label): 1}
    version = api.get("/model").json()["version"]
    assert stats.by_model_version[version].agreement == 1.0  # the shipped model reads it right


def test_feedback_keeps_a_repeat_of_image_and_label_once(api: TestClient, digits) -> None:
    image, label, _ = digits[0]
    first = send(api, image, str(label))
    again = send(api, image, str(label))
    other = send(api, image, "none")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json() == first.json() | {"duplicate": True}
    assert api.get("/feedback/stats").json()["total"] == 2


@pytest.mark.parametrize("label", ["10", "seven", "", "-1"])
def test_feedback_rejects_a_bad_label_and_stores_nothing(api: TestClient, digits, label) -> None:
    answer = send(api, digits[0][0], label)
    assert answer.status_code == 422
    assert "label" in answer.json()["detail"]
    assert api.get("/feedback/stats").json()["total"] == 0


def test_feedback_rejects_a_missing_label(api: TestClient, digits) -> None:
    answer = api.post("/feedback", files={"file": ("d.png", digits[0][0], "image/png")})
    assert answer.status_code == 422
    assert "'label'" in answer.json()["detail"]


def test_feedback_rejects_a_bad_image_and_keeps_what_is_stored(api: TestClient, digits) -> None:
    send(api, digits[0][0], "7")
    not_image = send(api, b"plain text, not an image", "7")
    truncated = send(api, digits[1][0][:40], "2")
    assert (not_image.status_code, truncated.status_code) == (415, 422)
    assert api.get("/feedback/stats").json()["total"] == 1


def test_feedback_export_and_delete_need_the_token(api: TestClient, digits) -> None:
    record = send(api, digits[0][0], "7").json()["id"]
    assert api.get("/feedback/export").status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert api.get("/feedback/export", headers=wrong).status_code == 401
    assert api.delete(f"/feedback/{record}", headers=wrong).status_code == 401
    assert api.get("/feedback/stats").json()["total"] == 1


def test_feedback_export_gives_the_frames_the_model_read(api: TestClient, digits) -> None:
    for image, label, _ in digits:
        send(api, image, str(label))
    first = FeedbackPage.model_validate(api.get("/feedback/export?limit=5", headers=TOKEN).json())
    assert first.next_after is not None
    rest = api.get(f"/feedback/export?after={first.next_after}", headers=TOKEN).json()
    records = [*first.records, *FeedbackPage.model_validate(rest).records]
    assert [r.label for r in records] == [str(label) for _, label, _ in digits]
    for record, (_, _, pixels) in zip(records, digits, strict=True):
        frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(record.frame_png))))
        # An MNIST-format upload goes through the pipeline untouched: its frame is itself.
        assert np.array_equal(frame, pixels)


def test_feedback_delete_removes_one_record(api: TestClient, digits) -> None:
    kept = send(api, digits[0][0], "7").json()["id"]
    gone = send(api, digits[1][0], "2").json()["id"]
    assert api.delete(f"/feedback/{gone}", headers=TOKEN).status_code == 204
    assert api.delete(f"/feedback/{gone}", headers=TOKEN).status_code == 404
    records = api.get("/feedback/export", headers=TOKEN).json()["records"]
    assert [r["id"] for r in records] == [kept]


def test_feedback_counts_what_it_received_in_metrics(api: TestClient, digits) -> None:
    send(api, digits[0][0], "7")
    send(api, digits[0][0], "7")
    send(api, digits[0][0], "eleven")
    text = api.get("/metrics").text
    assert 'lenet5_feedback_received_total{label="7",result="stored"} 1.0' in text
    assert 'lenet5_feedback_received_total{label="7",result="duplicate"} 1.0' in text
    assert 'lenet5_feedback_received_total{label="",result="refused 422"} 1.0' in text


def test_feedback_off_answers_404_and_403(shipped_model: Path, tmp_path: Path, digits) -> None:
    settings = settings_for(shipped_model, tmp_path, None, feedback="off")
    with TestClient(create_app(settings)) as client:
        posted = send(client, digits[0][0], "7")
        assert posted.status_code == 404
        assert "LENET5_FEEDBACK=off" in posted.json()["detail"]
        assert client.get("/feedback/stats").status_code == 404
        assert client.get("/feedback/export", headers=TOKEN).status_code == 403
        assert client.delete("/feedback/1", headers=TOKEN).status_code == 403
        assert (
            client.post(
                "/predict", content=digits[0][0], headers={"Content-Type": "image/png"}
            ).status_code
            == 200
        )
    assert not list(tmp_path.iterdir())  # no store was even created


def test_feedback_store_down_answers_503_and_predict_keeps_working(
    shipped_model: Path, tmp_path: Path, digits
) -> None:
    url = f"postgresql://lenet5@/lenet5?host={tmp_path}"  # no server on that socket
    with TestClient(create_app(settings_for(shipped_model, tmp_path, url))) as client:
        answer = send(client, digits[0][0], "7")
        assert answer.status_code == 503
        assert "cannot" in answer.json()["detail"] and "feedback store" in answer.json()["detail"]
        assert client.get("/feedback/stats").status_code == 503
        predicted = client.post(
            "/predict", content=digits[0][0], headers={"Content-Type": "image/png"}
        )
        assert predicted.status_code == 200 and predicted.json()["digit"] == digits[0][1]
        assert client.get("/ready").status_code == 200


def test_feedback_full_disk_answers_507_and_loses_nothing(
    shipped_model: Path, tmp_path: Path, digits, encode
) -> None:
    with TestClient(create_app(settings_for(shipped_model, tmp_path, None))) as client:
        kept = send(client, digits[0][0], "7").json()["id"]
        engine = client.app.state.service.feedback.store.engine  # type: ignore[attr-defined]
        with engine.connect() as connection:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
        engine.dispose()

        # SQLite's ceiling on its file's size stands in for a full disk: the same SQLITE_FULL.
        @sa.event.listens_for(engine, "connect")
        def limit(connection, _record) -> None:
            connection.execute(f"PRAGMA max_page_count={pages}")

        noise = np.random.default_rng(0).integers(0, 256, (600, 600), np.uint8)
        full = send(client, encode(noise), "none")
        assert full.status_code == 507
        assert "disk is full" in full.json()["detail"]
        records = client.get("/feedback/export", headers=TOKEN).json()["records"]
        assert [r["id"] for r in records] == [kept]


def test_feedback_export_command_writes_what_the_api_stored(
    api: TestClient, digits, store_url: str | None, tmp_path: Path
) -> None:
    for image, label, _ in digits:
        send(api, image, str(label))
    send(api, digits[0][0], "none")
    out = tmp_path / "export"
    source = ["--url", store_url] if store_url else ["--db", str(tmp_path)]
    assert lenet5(["feedback", "export", "--out", str(out), "--held-out", "0.3", *source]) == 0
    train, held_out = dataset.read(out, "train"), dataset.read(out, "held_out")
    assert len(train.labels) + len(held_out.labels) == 9
    assert len(held_out.labels) > 0
    by_id = dict(zip(train.ids + held_out.ids, [*train.frames, *held_out.frames], strict=True))
    labels = dict(zip(train.ids + held_out.ids, train.labels + held_out.labels, strict=True))
    for record_id, (_, label, pixels) in enumerate(digits, 1):
        assert np.array_equal(by_id[record_id], pixels)
        assert labels[record_id] == str(label)
    assert labels[9] == "none"


def test_feedback_survives_the_postgresql_server_going_away(
    shipped_model: Path, tmp_path: Path, digits, postgres_bin: Path
) -> None:
    """The server stops while the service runs: corrections answer 503 and /predict keeps
    serving; it comes back: what was stored before is there, and new corrections are kept."""
    from postgres import Cluster

    with Cluster(postgres_bin) as cluster:
        url = cluster.create_database("outage")
        with TestClient(create_app(settings_for(shipped_model, tmp_path, url))) as client:
            first = send(client, digits[0][0], "7").json()["id"]
            cluster.stop_server()
            down = send(client, digits[1][0], "2")
            assert down.status_code == 503
            assert "feedback store" in down.json()["detail"]
            predicted = client.post(
                "/predict", content=digits[1][0], headers={"Content-Type": "image/png"}
            )
            assert predicted.status_code == 200
            cluster.start_server()
            again = send(client, digits[1][0], "2")
            assert again.status_code == 201, again.text
            records = client.get("/feedback/export", headers=TOKEN).json()["records"]
            assert [r["id"] for r in records] == [first, again.json()["id"]]


@pytest.mark.slow
def test_feedback_from_several_uvicorn_workers_is_stored_once_each(
    store_url: str | None, tmp_path: Path, mnist_test, encode
) -> None:
    """`lenet5 serve --workers 3` on one store: each worker migrates it at start, and
    corrections sent concurrently, each image twice, are all kept exactly once."""
    import os
    import signal
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from test_reload import free_port, wait_ready

    images, labels = mnist_test
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {"LENET5_FEEDBACK_DB": str(tmp_path)}
    if store_url:
        env["LENET5_FEEDBACK_URL"] = store_url
    command = [sys.executable, "-m", "model.cli", "serve", "--port", str(port), "--workers", "3"]
    # A session of its own, so that the server, its workers and their decoder processes can be
    # stopped together: a decoder left behind would hold the output pipe open.
    server = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_ready(url, server)

        def post(index: int) -> int:
            files = {"file": (f"{index}.png", encode(images[index % 60]), "image/png")}
            data = {"label": str(labels[index % 60])}
            return httpx.post(f"{url}/feedback", files=files, data=data, timeout=30).status_code

        with ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(post, range(120)))
        assert sorted(set(statuses)) == [200, 201]
        assert statuses.count(201) == 60
        assert httpx.get(f"{url}/feedback/stats").json()["total"] == 60
    finally:
        server.terminate()
        # What this test holds is the storage; a three-worker server can be slow to stop (each
        # worker stops its decoder processes), so it is killed if it has not stopped in 30 s.
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.communicate()
