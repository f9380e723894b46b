"""The web API on real MNIST digits: answers, parity with offline inference, every bad input."""

import asyncio
import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.schemas import EXAMPLE_PREDICTION, EXAMPLE_READING, BatchPrediction, ModelInfo, Prediction
from app.settings import Settings
from training.numbers import make_number

Encode = Callable[..., bytes]
PNG = {"Content-Type": "image/png"}
SMALL_UPLOAD = 4000


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The first 20 test digits and the first 8 (index 61): every class is there."""
    images, labels = mnist_test
    index = [*range(20), 61]
    return images[index], labels[index]


@pytest.fixture(scope="module")
def small(shipped_model) -> Iterator[TestClient]:
    """A service with tight limits, to run into each of them."""
    settings = Settings(
        model_path=shipped_model,
        max_upload_bytes=SMALL_UPLOAD,
        max_image_pixels=200 * 200,
        max_batch=3,
        max_batch_bytes=3 * SMALL_UPLOAD,
        cors_origins="https://demo.example, https://other.example",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def post_png(client: TestClient, data: bytes, url: str = "/predict") -> Any:
    return client.post(url, content=data, headers=PNG)


def session_of(model_path) -> ort.InferenceSession:
    """A plain onnxruntime session, one thread, independent of the service."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def offline_distances(model_path, images: np.ndarray) -> np.ndarray:
    from training.mnist import prepare

    return session_of(model_path).run(["distances"], {"image": prepare(images)})[0]


@pytest.mark.slow
def test_predict_agrees_with_offline_inference_on_500_mnist_digits(
    client: TestClient, mnist_test, shipped_model, encode: Encode
) -> None:
    images = mnist_test[0][:500]
    expected = offline_distances(shipped_model, images)
    for index, image in enumerate(images):
        answer = post_png(client, encode(image))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        got = np.array([body["distances"][str(d)] for d in range(10)])
        assert body["digit"] == int(expected[index].argmin()), f"test digit {index}"
        np.testing.assert_allclose(got, expected[index], rtol=0, atol=1e-4)


def test_predict_answers_raw_body_and_multipart_alike(client: TestClient, digits, encode) -> None:
    data = encode(digits[0][0])
    raw = post_png(client, data)
    form = client.post("/predict", files={"file": ("seven.png", data, "image/png")})
    octets = client.post(
        "/predict", content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert raw.status_code == form.status_code == octets.status_code == 200
    assert raw.json() == form.json() == octets.json()
    assert raw.headers["content-type"] == "application/json"


def test_predict_answer_has_the_documented_fields(client: TestClient, digits, encode) -> None:
    body = post_png(client, encode(digits[0][0])).json()
    Prediction.model_validate(body)
    assert body["digit"] == digits[1][0]
    assert list(body["distances"]) == [str(d) for d in range(10)]
    assert list(body["probabilities"]) == [*(str(d) for d in range(10)), "none"]
    assert sum(body["probabilities"].values()) == pytest.approx(1)
    assert body["confidence"] == body["probabilities"][str(body["digit"])]
    assert body["rejected"] is False
    assert len(body["sha256"]) == 64 and body["version"]
    assert "explain" not in body


def test_probabilities_follow_the_map_formula(client: TestClient, digits, encode) -> None:
    j = client.get("/model").json()["j"]
    body = post_png(client, encode(digits[0][3])).json()
    y = np.array([body["distances"][str(d)] for d in range(10)], dtype=np.float64)
    weights = np.exp(-np.append(y, j) + y.min())
    expected = weights / weights.sum()
    got = [body["probabilities"][key] for key in [*map(str, range(10)), "none"]]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-300)


def digit_variants(digit: np.ndarray) -> dict[str, Image.Image]:
    """The same MNIST digit as people upload it."""
    big = Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR)
    paper = Image.fromarray(255 - np.asarray(big))
    off_centre = Image.new("L", (600, 400), 255)
    off_centre.paste(paper.resize((140, 140)), (40, 220))
    rgba = Image.new("RGBA", big.size, (0, 0, 0, 0))
    rgba.putalpha(big)  # black ink whose opacity is the stroke, on a transparent background
    return {"paper": paper, "off_centre": off_centre, "rgba": rgba, "jpeg": paper.convert("RGB")}


def test_predict_reads_the_digit_however_it_is_uploaded(client: TestClient, digits, encode) -> None:
    # Judged on the digits the model reads right as MNIST has them: a misread original says
    # nothing about preprocessing, and which digits a model misreads changes with every model.
    read_right = 0
    for index, (digit, label) in enumerate(zip(*digits, strict=True)):
        original = post_png(client, encode(digit)).json()
        if original["digit"] != label or original["rejected"]:
            continue
        read_right += 1
        for name, image in digit_variants(digit).items():
            data = encode(image, "JPEG", quality=85) if name == "jpeg" else encode(image)
            answer = post_png(client, data)
            assert answer.status_code == 200, (name, answer.text)
            assert answer.json()["digit"] == label, f"digit {index} ({label}) as {name}"
    assert read_right >= len(digits[0]) - 2


def test_predict_explain_returns_input_and_every_layer(client: TestClient, digits, encode) -> None:
    data = encode(digits[0][0])
    plain = post_png(client, data).json()
    answer = post_png(client, data, "/predict?explain=true")
    assert answer.status_code == 200
    body = answer.json()
    Prediction.model_validate(body)
    explain = body.pop("explain")
    assert body == plain
    shapes = {name: np.array(value).shape for name, value in explain["activations"].items()}
    assert np.array(explain["input"]).shape == (32, 32)
    assert shapes == {
        "c1": (6, 28, 28), "s2": (6, 14, 14), "c3": (16, 10, 10),
        "s4": (16, 5, 5), "c5": (120,), "f6": (84,),
    }  # fmt: skip
    assert min(map(min, explain["input"])) == pytest.approx(-0.1)
    assert max(map(max, explain["input"])) == pytest.approx(1.175)
    every = [*np.ravel(explain["input"]), *explain["activations"]["f6"]]
    assert all(round(v, 4) == v for v in every)


def test_predict_explain_names_the_threshold_a_small_scan_was_judged_by(
    client: TestClient, digits, encode, scan_png
) -> None:
    rejection = client.get("/model").json()["rejection"]
    uploads = (
        (encode(digits[0][0]), "threshold"),
        (scan_png(digits[0][0], 10), "low_resolution_threshold"),
    )
    for upload, threshold in uploads:
        explain = post_png(client, upload, "/predict?explain=true").json()["explain"]
        assert explain["threshold"] == rejection[threshold]
    assert rejection["low_resolution_threshold"] != rejection["threshold"]


def test_predict_batch_answers_each_image_in_order(client: TestClient, digits, encode) -> None:
    uploads = [encode(image) for image in digits[0]]
    files = [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(uploads)]
    answer = client.post("/predict/batch", files=files)
    assert answer.status_code == 200, answer.text
    BatchPrediction.model_validate(answer.json())
    assert answer.json()["results"] == [post_png(client, data).json() for data in uploads]


def test_predict_batch_puts_an_error_in_place_of_a_bad_image(
    client: TestClient, digits, encode
) -> None:
    good = encode(digits[0][0])
    files = [
        ("files", ("a.png", good, "image/png")),
        ("files", ("notes.txt", b"not an image", "text/plain")),
        ("files", ("blank.png", encode(np.zeros((28, 28), np.uint8)), "image/png")),
        ("files", ("b.png", good, "image/png")),
    ]
    results = client.post("/predict/batch", files=files).json()["results"]
    assert [r.get("digit") for r in results] == [digits[1][0], None, None, digits[1][0]]
    assert results[1] == {
        "error": {"status": 415, "detail": results[1]["error"]["detail"]},
        "filename": "notes.txt",
    }
    assert results[2]["error"]["status"] == 422 and "no ink" in results[2]["error"]["detail"]


def test_predict_batch_refuses_an_image_over_the_upload_limit_alone(
    small: TestClient, digits, encode
) -> None:
    files = [
        ("files", ("a.png", encode(digits[0][0]), "image/png")),
        ("files", ("big.bin", b"\0" * (SMALL_UPLOAD + 1), "image/png")),
    ]
    results = small.post("/predict/batch", files=files).json()["results"]
    assert results[0]["digit"] == digits[1][0]
    assert results[1]["error"]["status"] == 413


def test_predict_batch_rejects_more_images_than_allowed(small: TestClient, digits, encode) -> None:
    files = [("files", (f"{i}.png", encode(digits[0][i]), "image/png")) for i in range(4)]
    answer = small.post("/predict/batch", files=files)
    assert answer.status_code == 413
    assert "more than the 3 allowed" in answer.json()["detail"]


def test_predict_batch_rejects_a_missing_files_field(client: TestClient, digits, encode) -> None:
    answer = client.post("/predict/batch", files={"file": ("a.png", encode(digits[0][0]))})
    assert answer.status_code == 422
    assert "no multipart field 'files'" in answer.json()["detail"]


def test_predict_batch_rejects_a_raw_body(client: TestClient, digits, encode) -> None:
    answer = post_png(client, encode(digits[0][0]), "/predict/batch")
    assert answer.status_code == 415


# ---------------------------------------------------------------- bad uploads to /predict


def assert_error(answer: Any, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert words in answer.json()["detail"]


def test_predict_rejects_a_file_that_is_not_an_image(client: TestClient) -> None:
    assert_error(post_png(client, b"%PDF-1.7 not an image"), 415, "not an image")


def test_predict_rejects_truncated_png(client: TestClient, digits, encode) -> None:
    data = encode(digits[0][0])
    assert_error(post_png(client, data[: len(data) // 2]), 422, "corrupt or truncated")


def test_predict_rejects_zero_bytes(client: TestClient) -> None:
    assert_error(post_png(client, b""), 415, "empty")


def test_predict_rejects_a_blank_image(client: TestClient, encode) -> None:
    assert_error(post_png(client, encode(np.full((50, 50), 255, np.uint8))), 422, "no ink")


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
def test_predict_rejects_an_unsupported_media_type(
    client: TestClient, digits, encode, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post("/predict", content=encode(digits[0][0]), headers=headers)
    assert_error(answer, 415, "unsupported Content-Type")


def test_predict_rejects_a_body_over_the_upload_limit(small: TestClient) -> None:
    assert_error(post_png(small, b"\x89PNG" + b"\0" * SMALL_UPLOAD), 413, "larger than")


def test_predict_rejects_a_multipart_body_over_the_upload_limit(small: TestClient) -> None:
    answer = small.post("/predict", files={"file": ("big.png", b"\0" * SMALL_UPLOAD)})
    assert_error(answer, 413, "larger than")


def test_predict_rejects_too_many_pixels(small: TestClient, encode) -> None:
    image = np.zeros((300, 300), np.uint8)
    image[100:200, 140:160] = 255
    assert_error(post_png(small, encode(image)), 413, "pixels")


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = b"IDAT" + zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    )  # fmt: skip


def test_predict_rejects_a_decompression_bomb(client: TestClient) -> None:
    assert_error(post_png(client, png_claiming(100_000, 100_000)), 413, "pixels")


def test_predict_reads_the_first_frame_of_an_animated_gif(
    client: TestClient, digits, encode
) -> None:
    frames = [Image.fromarray(digits[0][i]) for i in (0, 1, 2)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    answer = client.post("/predict", content=data, headers={"Content-Type": "image/gif"})
    assert answer.status_code == 200
    assert answer.json()["digit"] == digits[1][0]


def test_predict_rejects_malformed_multipart(client: TestClient) -> None:
    answer = client.post(
        "/predict",
        content=b"--xyz\r\nContent-Disposition: form-data; name=file\r\n\r\nunfinished",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert_error(answer, 422, "malformed multipart")


def test_predict_rejects_multipart_without_a_boundary(client: TestClient) -> None:
    answer = client.post("/predict", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert_error(answer, 422, "no boundary")


def test_predict_rejects_a_misnamed_field(client: TestClient, digits, encode) -> None:
    answer = client.post("/predict", files={"image": ("a.png", encode(digits[0][0]))})
    assert_error(answer, 422, "field 'file' (fields: 'image')")


def test_predict_rejects_a_missing_field(client: TestClient) -> None:
    answer = client.post("/predict", files={"note": (None, b"no file")})
    assert_error(answer, 422, "field 'file' (fields: 'note')")


def test_predict_rejects_two_files(client: TestClient, digits, encode) -> None:
    data = encode(digits[0][0])
    answer = client.post("/predict", files=[("file", ("a.png", data)), ("file", ("b.png", data))])
    assert_error(answer, 422, "/predict/batch")


def test_predict_rejects_an_invalid_explain_flag(client: TestClient, digits, encode) -> None:
    assert_error(post_png(client, encode(digits[0][0]), "/predict?explain=maybe"), 422, "explain")


# The TestClient reads the whole request body before the app sees it, so the streaming limits
# are checked by calling the app with an ASGI receive that counts what it hands out.


def call_app(
    app: Any, headers: dict[str, str], chunks: Iterator[bytes], disconnect: bool = False
) -> tuple[int, dict[str, Any], int]:
    """POST /predict with the body in `chunks`, then the end of the body or, with `disconnect`,
    the client leaving: (status, JSON answer, chunks read)."""
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None and disconnect:
            return {"type": "http.disconnect"}
        read += chunk is not None
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), read


def endless(size: int = 1000) -> Iterator[bytes]:
    while True:
        yield b"\0" * size


def test_predict_stops_reading_a_streamed_body_at_the_limit(small: TestClient) -> None:
    status, answer, read = call_app(small.app, PNG, endless())
    assert status == 413 and "larger than" in answer["detail"]
    assert read == SMALL_UPLOAD // 1000 + 1


def test_predict_stops_reading_a_streamed_multipart_body_at_the_limit(small: TestClient) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    status, _, read = call_app(small.app, headers, endless())
    assert status == 413 and read == SMALL_UPLOAD // 1000 + 1


def test_predict_refuses_a_huge_content_length_without_reading(client: TestClient) -> None:
    status, answer, read = call_app(client.app, PNG | {"Content-Length": str(10**12)}, endless())
    assert status == 413 and read == 0
    assert "1000000000000 bytes" in answer["detail"]


def test_predict_rejects_an_invalid_content_length(client: TestClient) -> None:
    status, answer, read = call_app(client.app, PNG | {"Content-Length": "12abc"}, endless())
    assert status == 400 and read == 0
    assert "invalid Content-Length" in answer["detail"]


def test_predict_answers_400_when_the_client_goes_away(client: TestClient) -> None:
    status, answer, _ = call_app(client.app, PNG, iter([]), disconnect=True)
    assert status == 400 and "went away" in answer["detail"]


# ---------------------------------------------------------------- the other routes


def test_model_describes_the_network_from_its_metadata(client: TestClient, shipped_model) -> None:
    answer = client.get("/model")
    assert answer.status_code == 200
    body = answer.json()
    ModelInfo.model_validate(body)
    raw = session_of(shipped_model).get_modelmeta().custom_metadata_map
    meta = {key: json.loads(value) for key, value in raw.items()}
    arch = meta["lenet5.architecture"]
    assert body["layers"] == arch["layers"]
    assert [layer["name"] for layer in body["layers"]] == [
        "C1",
        "S2",
        "C3",
        "S4",
        "C5",
        "F6",
        "output",
    ]
    assert np.array(body["c3_table"]).shape == (6, 16)
    assert np.array(body["rbf_bitmaps"]["digits"]).shape == (10, 12, 7)
    assert body["squashing"]["A"] == pytest.approx(1.7159)
    assert body["totals"] == arch["totals"]
    assert (
        sum(layer["trainable_parameters"] for layer in body["layers"])
        == arch["totals"]["trainable_parameters"]
    )
    assert body["training"]["test_error"] == meta["lenet5.training"]["test_error"]
    assert body["training"]["paper_test_error"]["LeNet-5"] == 0.0095
    assert body["input"]["background"] == -0.1 and body["input"]["ink"] == 1.175
    assert body["rejection"] == meta["lenet5.rejection"]
    assert body["sha256"] == client.get("/ready").json()["sha256"]


def test_model_sha256_is_that_of_the_file(client: TestClient, shipped_model) -> None:
    import hashlib

    expected = hashlib.sha256(shipped_model.read_bytes()).hexdigest()
    assert client.get("/model").json()["sha256"] == expected


def test_health_and_ready_answer(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_ready_is_503_before_the_model_is_loaded(service_settings) -> None:
    not_started = TestClient(create_app(service_settings))  # no `with`: no lifespan, no model
    assert_error(not_started.get("/ready"), 503, "not loaded")
    assert not_started.get("/health").status_code == 200


def test_metrics_count_requests_digits_and_rejections(service_settings, digits, encode) -> None:
    with TestClient(create_app(service_settings)) as fresh:
        post_png(fresh, encode(digits[0][0]))
        post_png(fresh, b"junk")
        fresh.get("/no/such/page")
        text = fresh.get("/metrics").text
    assert 'lenet5_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'lenet5_http_requests_total{method="POST",route="/predict",status="415"} 1.0' in text
    assert 'lenet5_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert 'lenet5_http_request_duration_seconds_count{method="POST",route="/predict"' in text
    assert f'lenet5_predictions_total{{digit="{digits[1][0]}"}} 1.0' in text
    assert "lenet5_rejections_total 0.0" in text
    assert 'lenet5_model_info{sha256="' in text


def test_two_apps_in_one_process_keep_their_own_metrics(service_settings) -> None:
    with (
        TestClient(create_app(service_settings)) as first,
        TestClient(create_app(service_settings)) as second,
    ):
        first.get("/health")
        assert 'route="/health"' in first.get("/metrics").text
        assert 'route="/health"' not in second.get("/metrics").text


def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "Not Found")
    answer = client.get("/predict")
    assert_error(answer, 405, "Method Not Allowed")
    assert answer.headers["allow"] == "POST"


def test_cors_allows_the_configured_origins(small: TestClient) -> None:
    preflight = small.options(
        "/predict",
        headers={"Origin": "https://demo.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.headers["access-control-allow-origin"] == "https://demo.example"
    other = small.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_demo_page_and_static_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert client.get("/static/index.html").text == page.text
    assert "/" not in client.get("/openapi.json").json()["paths"]


def same_answer(got: Any, documented: Any) -> bool:
    """Equal, floats to within onnxruntime's last bits between builds."""
    if isinstance(documented, dict):
        return got.keys() == documented.keys() and all(
            same_answer(got[k], documented[k]) for k in documented
        )
    if isinstance(documented, list):
        return len(got) == len(documented) and all(map(same_answer, got, documented))
    if isinstance(documented, float):
        return got == pytest.approx(documented, rel=1e-4, abs=1e-30)
    return bool(got == documented)


def test_openapi_examples_are_what_the_service_answers(
    client: TestClient, mnist_test, encode
) -> None:
    images, labels = mnist_test
    prediction = client.post("/predict", content=encode(images[0]),
                             headers={"content-type": "image/png"}).json()  # fmt: skip
    assert same_answer(prediction, EXAMPLE_PREDICTION)
    number = make_number(images, labels, 3, np.random.default_rng(2026))
    reading = client.post("/read", content=encode(number.image),
                          headers={"content-type": "image/png"}).json()  # fmt: skip
    assert same_answer(reading, EXAMPLE_READING)


def test_openapi_documents_bodies_examples_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) == {
        "multipart/form-data", "image/*", "application/octet-stream",
    }  # fmt: skip
    assert {"413", "415", "422"} <= set(predict["responses"])
    assert predict["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert [p["name"] for p in predict["parameters"]] == ["explain"]
    assert schema["components"]["schemas"]["Prediction"]["examples"]
    assert "files" in str(schema["paths"]["/predict/batch"]["post"]["requestBody"])
    for path in ("/model", "/model/reload", "/health", "/ready", "/metrics"):
        assert path in schema["paths"]
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200
