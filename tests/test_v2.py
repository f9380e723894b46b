"""The Open Inference Protocol (/v2) against the live service, through clients no one here wrote
(tritonclient's InferenceServerClient, kserve's InferenceRESTClient), on real MNIST test digits,
and every bad request answered 4xx with {"error": ...}."""

import asyncio
import base64
import struct
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

from app.imaging import to_model_inputs
from app.inference_schemas import InferenceResponse, ModelMetadataResponse, ServerMetadata
from app.main import create_app
from training.mnist import prepare

MODEL = "lenet5"
COUNT = 48  # test digits sent through each client
HEADER = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def digits(mnist_test: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_test
    return images[:COUNT], labels[:COUNT]


@pytest.fixture(scope="module")
def pngs(digits, encode: Callable[..., bytes]) -> list[bytes]:
    return [encode(image) for image in digits[0]]


@pytest.fixture(scope="module")
def address(server_url: str) -> str:
    """host:port, as tritonclient takes it."""
    return server_url.removeprefix("http://")


@pytest.fixture(scope="module")
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def predicted(http: httpx.Client, pngs: list[bytes]) -> np.ndarray:
    """/predict's distances for each digit, as float32 (what the model computes)."""
    rows = []
    for data in pngs:
        answer = http.post("/predict", content=data, headers={"Content-Type": "image/png"})
        assert answer.status_code == 200, answer.text
        rows.append([answer.json()["distances"][str(d)] for d in range(10)])
    return np.array(rows, np.float32)


@pytest.fixture(scope="module")
def tc(address: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(address)
    yield client
    client.close()


@pytest.fixture(scope="module")
def version(http: httpx.Client) -> str:
    return http.get("/ready").json()["version"]


def image_input(images: np.ndarray, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=binary)
    return tensor


def upload_input(files: list[bytes]) -> triton.InferInput:
    tensor = triton.InferInput("upload", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=True)
    return tensor


def outputs(*names: str, binary: bool) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary) for name in names]


# ---- health and metadata -------------------------------------------------------------------


def test_tritonclient_sees_the_server_live_and_the_model_ready(tc, version: str) -> None:
    assert tc.is_server_live()
    assert tc.is_server_ready()
    assert tc.is_model_ready(MODEL)
    assert tc.is_model_ready(MODEL, version)
    assert not tc.is_model_ready("resnet50")
    assert not tc.is_model_ready(MODEL, "1")


def test_tritonclient_reads_the_model_metadata(tc, version: str) -> None:
    metadata = tc.get_model_metadata(MODEL)
    ModelMetadataResponse.model_validate(metadata)
    assert metadata["name"] == MODEL and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["versions"] == [version]
    assert metadata["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 1, 32, 32]},
        {"name": "upload", "datatype": "BYTES", "shape": [-1]},
    ]
    assert metadata["outputs"] == [
        {"name": "distances", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "digit", "datatype": "INT64", "shape": [-1]},
        {"name": "rejected", "datatype": "BOOL", "shape": [-1]},
    ]
    assert tc.get_model_metadata(MODEL, version) == metadata


def test_server_metadata_names_the_binary_extension(tc) -> None:
    metadata = tc.get_server_metadata()
    ServerMetadata.model_validate(metadata)
    assert metadata["name"] == MODEL and "binary_tensor_data" in metadata["extensions"]


def test_health_bodies_are_the_ones_kserve_reads(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    assert http.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}


# ---- inference through tritonclient -------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_on_mnist_gives_predicts_distances(
    tc, digits, predicted: np.ndarray, version: str, binary: bool
) -> None:
    images, labels = digits
    result = tc.infer(
        MODEL,
        [image_input(prepare(images), binary)],
        outputs=outputs("distances", "digit", "rejected", binary=binary),
        request_id="mnist-test-0",
    )
    distances = result.as_numpy("distances")
    assert distances.dtype == np.float32 and distances.shape == (COUNT, 10)
    np.testing.assert_array_equal(distances, predicted)
    np.testing.assert_array_equal(result.as_numpy("digit"), predicted.argmin(axis=1))
    assert result.as_numpy("digit").dtype == np.int64
    assert result.as_numpy("rejected").dtype == np.bool_
    # The shipped model reads all but a handful of the test digits right.
    assert (result.as_numpy("digit") == labels).mean() > 0.95
    response = result.get_response()
    InferenceResponse.model_validate(response)
    assert response["id"] == "mnist-test-0"
    assert response["model_name"] == MODEL and response["model_version"] == version


def test_digit_and_rejected_are_predicts_including_for_what_is_no_digit(
    tc, http: httpx.Client, digits, encode: Callable[..., bytes]
) -> None:
    square = np.zeros((28, 28), np.uint8)
    square[6:22, 6:22] = 255
    grid = np.zeros((28, 28), np.uint8)
    grid[:, 8:10] = grid[:, 18:20] = grid[8:10, :] = grid[18:20, :] = 255
    frames = np.concatenate([digits[0][:6], square[None], grid[None]])
    answers = [
        http.post("/predict", content=encode(frame), headers={"Content-Type": "image/png"}).json()
        for frame in frames
    ]
    assert [a["rejected"] for a in answers][-2:] == [True, True]  # the shapes are not digits
    files = [encode(frame) for frame in frames]
    # The shapes are not in MNIST's format: the service frames them before the network sees them.
    framed, failed, *_ = to_model_inputs(files)
    assert not failed
    for inputs in ([image_input(framed, True)], [upload_input(files)]):
        result = tc.infer(MODEL, inputs)
        assert result.as_numpy("rejected").tolist() == [a["rejected"] for a in answers]
        assert result.as_numpy("digit").tolist() == [a["digit"] for a in answers]


def test_uploaded_small_scans_are_judged_as_predict_judges_them(
    tc, http: httpx.Client, digits, scan_png: Callable[[np.ndarray, int], bytes]
) -> None:
    """A scan under 28 px has its own threshold: uploads to /v2, one at a time (read with the
    /predict uploads of the moment) or together (in the decoder pool), are judged by it too."""
    scans = [scan_png(image, 9) for image in digits[0][:40]]
    headers = {"Content-Type": "image/png"}
    answers = [http.post("/predict", content=scan, headers=headers).json() for scan in scans]
    rejected = [a["rejected"] for a in answers]
    threshold = http.get("/model").json()["rejection"]["threshold"]
    kept_by_it = [min(a["distances"].values()) > threshold and not a["rejected"] for a in answers]
    assert sum(kept_by_it) >= 2
    together = tc.infer(MODEL, [upload_input(scans)]).as_numpy("rejected").tolist()
    alone = [bool(tc.infer(MODEL, [upload_input([s])]).as_numpy("rejected")[0]) for s in scans]
    assert together == rejected and alone == rejected


def test_tritonclient_gets_every_output_in_binary_without_asking_for_any(
    tc, digits, predicted: np.ndarray
) -> None:
    # No `outputs`: tritonclient asks for all of them with binary_data_output.
    result = tc.infer(MODEL, [image_input(prepare(digits[0][:5]), True)])
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["distances", "digit", "rejected"]
    assert all("binary_data_size" in o["parameters"] for o in response["outputs"])
    np.testing.assert_array_equal(result.as_numpy("distances"), predicted[:5])
    assert "id" not in response


def test_tritonclient_asks_for_a_subset_of_outputs_in_mixed_forms(
    tc, digits, predicted: np.ndarray
) -> None:
    requested = [
        triton.InferRequestedOutput("rejected", binary_data=False),
        triton.InferRequestedOutput("digit", binary_data=True),
    ]
    result = tc.infer(MODEL, [image_input(prepare(digits[0]), True)], outputs=requested)
    response = result.get_response()
    assert [o["name"] for o in response["outputs"]] == ["rejected", "digit"]
    assert "data" in response["outputs"][0] and "data" not in response["outputs"][1]
    assert result.as_numpy("distances") is None
    np.testing.assert_array_equal(result.as_numpy("digit"), predicted.argmin(axis=1))


@pytest.mark.parametrize("count", [1, COUNT], ids=["one", "many"])
def test_tritonclient_uploads_image_files_as_bytes(
    tc, pngs: list[bytes], predicted: np.ndarray, count: int
) -> None:
    result = tc.infer(MODEL, [upload_input(pngs[:count])])
    np.testing.assert_array_equal(result.as_numpy("distances"), predicted[:count])


def test_uploads_in_json_are_base64(http: httpx.Client, pngs, predicted: np.ndarray) -> None:
    files = [base64.b64encode(data).decode() for data in pngs[:3]]
    body = {"inputs": [{"name": "upload", "shape": [3], "datatype": "BYTES", "data": files}]}
    answer = http.post(f"/v2/models/{MODEL}/infer", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    distances = answer.json()["outputs"][0]
    assert distances["name"] == "distances" and distances["shape"] == [3, 10]
    np.testing.assert_array_equal(np.array(distances["data"], np.float32), predicted[:3].ravel())


def test_nested_json_data_reads_as_flat(http: httpx.Client, digits, predicted) -> None:
    images = prepare(digits[0][:2])
    nested = {"name": "image", "shape": [2, 1, 32, 32], "datatype": "FP32", "data": images.tolist()}
    answer = http.post(f"/v2/models/{MODEL}/infer", json={"inputs": [nested]})
    assert answer.status_code == 200, answer.text
    np.testing.assert_array_equal(
        np.array(answer.json()["outputs"][0]["data"], np.float32), predicted[:2].ravel()
    )


def test_infer_at_the_serving_version(tc, digits, predicted, version: str) -> None:
    result = tc.infer(MODEL, [image_input(prepare(digits[0][:2]), True)], model_version=version)
    np.testing.assert_array_equal(result.as_numpy("distances"), predicted[:2])


def test_tritonclient_compressed_requests_are_read(tc, digits, predicted) -> None:
    for algorithm in ("gzip", "deflate"):
        result = tc.infer(
            MODEL,
            [image_input(prepare(digits[0][:4]), True)],
            request_compression_algorithm=algorithm,
        )
        np.testing.assert_array_equal(result.as_numpy("distances"), predicted[:4])


def test_answers_count_in_the_metrics(http: httpx.Client, tc, digits) -> None:
    def predictions() -> float:
        lines = http.get("/metrics").text.splitlines()
        return sum(
            float(line.split()[-1]) for line in lines if line.startswith("lenet5_predictions_total")
        )

    before = predictions()
    tc.infer(MODEL, [image_input(prepare(digits[0][:7]), True)])
    assert predictions() == before + 7
    assert 'route="/v2/models/{model_name}/infer"' in http.get("/metrics").text


# ---- inference through kserve -------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_rest_client_infer_on_mnist_gives_predicts_distances(
    server_url: str, digits, predicted: np.ndarray, binary: bool
) -> None:
    images = prepare(digits[0])
    tensor = InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=binary)
    request = InferRequest(
        MODEL,
        [tensor],
        request_id="kserve-1",
        request_outputs=[
            RequestedOutput("distances", {"binary_data": binary}),
            RequestedOutput("digit", {"binary_data": binary}),
        ],
    )

    async def run() -> tuple[Any, bool, bool]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            base = server_url
            live = await client.is_server_live(base)
            ready = await client.is_model_ready(base, MODEL)
            return await client.infer(base, request, MODEL), live, ready
        finally:
            await client.close()

    response, live, ready = asyncio.run(run())
    assert live and ready
    assert response.id == "kserve-1" and response.model_name == MODEL
    by_name = {output.name: output.as_numpy() for output in response.outputs}
    assert list(by_name) == ["distances", "digit"]
    np.testing.assert_array_equal(by_name["distances"].astype(np.float32), predicted)
    np.testing.assert_array_equal(by_name["digit"], predicted.argmin(axis=1))


# ---- errors ---------------------------------------------------------------------------------


def infer_raw(http: httpx.Client, document: dict[str, Any], binary: bytes = b"", **headers: str):
    header = orjson.dumps(document)
    if binary:
        headers.setdefault(HEADER, str(len(header)))
    return http.post(f"/v2/models/{MODEL}/infer", content=header + binary, headers=headers)


def image_tensor(shape: list[int], datatype: str = "FP32", **fields: Any) -> dict[str, Any]:
    return {"name": "image", "shape": shape, "datatype": datatype, **fields}


def binary_images(count: int) -> tuple[dict[str, Any], bytes]:
    data = np.zeros((count, 1, 32, 32), np.float32).tobytes()
    return image_tensor([count, 1, 32, 32], parameters={"binary_data_size": len(data)}), data


def assert_error(answer: httpx.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    for word in words:
        assert word in body["error"], body["error"]


def test_infer_rejects_a_wrong_shape(http: httpx.Client) -> None:
    data = np.zeros((2, 1, 28, 28), np.float32).tobytes()
    tensor = image_tensor([2, 1, 28, 28], parameters={"binary_data_size": len(data)})
    assert_error(
        infer_raw(http, {"inputs": [tensor]}, data), 400, "[N, 1, 32, 32]", "[2, 1, 28, 28]"
    )
    flat = image_tensor([1, 1024], data=[0.0] * 1024)
    assert_error(infer_raw(http, {"inputs": [flat]}), 400, "shape")


def test_infer_rejects_a_wrong_datatype(http: httpx.Client) -> None:
    data = np.zeros((1, 1, 32, 32), np.float64).tobytes()
    tensor = image_tensor([1, 1, 32, 32], "FP64", parameters={"binary_data_size": len(data)})
    assert_error(infer_raw(http, {"inputs": [tensor]}, data), 400, "FP32", "FP64")
    strings = image_tensor([1, 1, 32, 32], data=["0.5"] * 1024)
    assert_error(infer_raw(http, {"inputs": [strings]}), 400, "FP32 values")


def test_infer_rejects_a_wrong_element_count(http: httpx.Client) -> None:
    short = image_tensor([2, 1, 32, 32], data=[0.0] * 1024)
    assert_error(infer_raw(http, {"inputs": [short]}), 400, "2048 elements", "1024")
    tensor, data = binary_images(2)
    assert_error(infer_raw(http, {"inputs": [tensor]}, data[:-4]), 400, "binary_data_size")
    tensor["parameters"]["binary_data_size"] -= 4
    assert_error(infer_raw(http, {"inputs": [tensor]}, data[:-4]), 400, "8192 bytes", "8188")


def test_infer_rejects_nan_and_infinity(http: httpx.Client) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        images = np.zeros((1, 1, 32, 32), np.float32)
        images[0, 0, 5, 5] = bad
        data = images.tobytes()
        tensor = image_tensor([1, 1, 32, 32], parameters={"binary_data_size": len(data)})
        assert_error(infer_raw(http, {"inputs": [tensor]}, data), 400, "NaN or infinite")
    # JSON has no NaN: tritonclient writes Python's NaN literal, which is not JSON.
    body = b'{"inputs": [{"name": "image", "shape": [1], "datatype": "FP32", "data": [NaN]}]}'
    assert_error(http.post(f"/v2/models/{MODEL}/infer", content=body), 400, "not valid JSON")
    # A number beyond FP32 would become infinite.
    huge = image_tensor([1, 1, 32, 32], data=[1e39] * 1024)
    assert_error(infer_raw(http, {"inputs": [huge]}), 400, "NaN or infinite")


def test_infer_rejects_values_off_the_models_scale(http: httpx.Client, digits) -> None:
    grey = digits[0][:1].astype(np.float32)  # 0..255, not the model's −0.1..1.175
    padded = np.pad(grey, ((0, 0), (2, 2), (2, 2)))[:, None]
    tensor = image_tensor([1, 1, 32, 32], data=padded.ravel().tolist())
    assert_error(infer_raw(http, {"inputs": [tensor]}), 400, "-0.1 (paper)", "1.175")


def test_tritonclient_reports_the_servers_message(tc) -> None:
    tensor = triton.InferInput("image", [1, 1, 32, 32], "FP32")
    tensor.set_data_from_numpy(np.full((1, 1, 32, 32), np.nan, np.float32))
    with pytest.raises(InferenceServerException) as caught:
        tc.infer(MODEL, [tensor])
    assert caught.value.status() == "400" and "NaN" in caught.value.message()


def test_infer_rejects_a_bad_binary_header(http: httpx.Client) -> None:
    tensor, data = binary_images(1)
    document = {"inputs": [tensor]}
    header = orjson.dumps(document)
    url = f"/v2/models/{MODEL}/infer"
    for value, words in [
        ("twelve", ("must be a number",)),
        ("-5", ("must be a number",)),
        (str(len(header) + len(data) + 1), ("but the body has only",)),
        (str(len(header) - 3), ("not valid JSON",)),
        (str(len(header) + 8), ("not valid JSON",)),
    ]:
        answer = http.post(url, content=header + data, headers={HEADER: value})
        assert_error(answer, 400, *words)
    # Binary data without the header: the body must then be JSON alone.
    assert_error(http.post(url, content=header + data), 400, "not valid JSON")
    # A header, but a tensor that claims no binary data: what follows belongs to nothing.
    plain = orjson.dumps({"inputs": [image_tensor([1, 1, 32, 32], data=[0.0] * 1024)]})
    answer = http.post(url, content=plain + b"\0" * 8, headers={HEADER: str(len(plain))})
    assert_error(answer, 400, "8 bytes", "belong to no input")
    both = image_tensor([1, 1, 32, 32], data=[0.0] * 1024, parameters={"binary_data_size": 4096})
    assert_error(infer_raw(http, {"inputs": [both]}, data), 400, "both `data` and binary_data_size")
    negative = image_tensor([1, 1, 32, 32], parameters={"binary_data_size": -1})
    assert_error(infer_raw(http, {"inputs": [negative]}, data), 400, "non-negative integer")


def test_infer_rejects_bad_bytes_framing(http: httpx.Client, pngs: list[bytes]) -> None:
    def upload(framed: bytes, count: int = 1) -> httpx.Response:
        tensor = {"name": "upload", "shape": [count], "datatype": "BYTES",
                  "parameters": {"binary_data_size": len(framed)}}  # fmt: skip
        return infer_raw(http, {"inputs": [tensor]}, framed)

    png = pngs[0]
    assert_error(upload(struct.pack("<I", len(png) + 1) + png), 400, "claims", "left")
    assert_error(upload(struct.pack("<I", len(png)) + png + b"\1\0"), 400, "4-byte length")
    assert_error(upload(struct.pack("<I", len(png)) + png, 2), 400, "2 elements", "1")


def test_infer_names_the_upload_that_is_not_an_image(http: httpx.Client, pngs) -> None:
    files = [pngs[0], b"this is not an image", pngs[1]]
    framed = b"".join(struct.pack("<I", len(f)) + f for f in files)
    tensor = {"name": "upload", "shape": [3], "datatype": "BYTES",
              "parameters": {"binary_data_size": len(framed)}}  # fmt: skip
    assert_error(infer_raw(http, {"inputs": [tensor]}, framed), 400, "upload 1")
    not_base64 = {"name": "upload", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}
    assert_error(infer_raw(http, {"inputs": [not_base64]}), 400, "base64")


def test_infer_rejects_requests_that_are_not_one_known_input(http: httpx.Client, pngs) -> None:
    tensor, data = binary_images(1)
    upload = {"name": "upload", "shape": [1], "datatype": "BYTES",
              "data": [base64.b64encode(pngs[0]).decode()]}  # fmt: skip
    assert_error(infer_raw(http, {"inputs": [tensor, upload]}, data), 400, "not both")
    assert_error(infer_raw(http, {"inputs": [tensor, tensor]}, data + data), 400, "twice")
    other = image_tensor([1, 1, 32, 32], data=[0.0] * 1024) | {"name": "input0"}
    assert_error(infer_raw(http, {"inputs": [other]}), 400, "unknown input 'input0'")
    assert_error(infer_raw(http, {"inputs": []}), 400, "`inputs`")
    assert_error(http.post(f"/v2/models/{MODEL}/infer", content=b"\x89PNG"), 400, "not valid JSON")
    assert_error(infer_raw(http, [tensor]), 400, "JSON object")  # type: ignore[arg-type]
    asks = {"inputs": [tensor], "outputs": [{"name": "probabilities"}]}
    assert_error(infer_raw(http, asks, data), 400, "unknown output 'probabilities'")
    bad_id = {"inputs": [tensor], "id": 42}
    assert_error(infer_raw(http, bad_id, data), 400, "`id`")


def test_infer_refuses_more_images_than_allowed(http: httpx.Client) -> None:
    # Refused from the shape, before any data is read.
    tensor = image_tensor([100_000, 1, 32, 32], data=[])
    assert_error(infer_raw(http, {"inputs": [tensor]}), 413, "100000", "256")


def test_unknown_model_version_or_endpoint_is_404(http: httpx.Client, tc, version) -> None:
    tensor, data = binary_images(1)
    header = orjson.dumps({"inputs": [tensor]})
    for path in ["/v2/models/mnist/infer", "/v2/models/lenet5/versions/1/infer"]:
        answer = http.post(path, content=header + data, headers={HEADER: str(len(header))})
        assert_error(answer, 404, "unknown")
    assert_error(http.get("/v2/models/mnist"), 404, "unknown model 'mnist'", "'lenet5'")
    assert_error(http.get("/v2/models/lenet5/versions/7"), 404, f"'{version}'")
    assert_error(http.get("/v2/models/lenet5/versions/7/ready"), 404, "unknown version")
    assert_error(http.get("/v2/repository/index"), 404, "no endpoint")
    answer = http.get(f"/v2/models/{MODEL}/infer")
    assert_error(answer, 405, "POST")
    assert answer.headers["allow"] == "POST"
    with pytest.raises(InferenceServerException) as caught:
        tc.get_model_metadata("mnist")
    assert caught.value.status() == "404" and "unknown model" in caught.value.message()


def test_v2_is_503_before_the_model_is_loaded(service_settings) -> None:
    not_started = TestClient(create_app(service_settings))  # no `with`: no lifespan, no model
    tensor, data = binary_images(1)
    header = orjson.dumps({"inputs": [tensor]})
    infer = not_started.post(
        f"/v2/models/{MODEL}/infer", content=header + data, headers={HEADER: str(len(header))}
    )
    for answer in (not_started.get("/v2/health/ready"), not_started.get(f"/v2/models/{MODEL}"),
                   not_started.get(f"/v2/models/{MODEL}/ready"), infer):  # fmt: skip
        assert_error(answer, 503, "not loaded")
    assert not_started.get("/v2/health/live").json() == {"live": True}


def test_infer_refuses_an_unknown_content_encoding(http: httpx.Client) -> None:
    tensor, data = binary_images(1)
    answer = infer_raw(http, {"inputs": [tensor]}, data, **{"Content-Encoding": "br"})
    assert_error(answer, 415, "Content-Encoding")


def test_bad_requests_leave_the_service_answering(tc, digits, predicted) -> None:
    for _ in range(3):
        with pytest.raises(InferenceServerException):
            tc.infer(MODEL, [triton.InferInput("image", [1, 1, 32, 32], "FP32")])
    result = tc.infer(MODEL, [image_input(prepare(digits[0][:1]), True)])
    np.testing.assert_array_equal(result.as_numpy("distances"), predicted[:1])


# ---- documentation --------------------------------------------------------------------------


def test_openapi_documents_the_protocol(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}",
                 "/v2/models/{model_name}/ready", "/v2/models/{model_name}/infer",
                 "/v2/models/{model_name}/versions/{model_version}/infer"]:  # fmt: skip
        assert path in paths, path
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    body = infer["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["inputs"]["items"]["properties"]
    assert "application/octet-stream" in body
    assert infer["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ProtocolErrorBody"
    )
    components = schema["components"]["schemas"]
    assert {"InferenceResponse", "ModelMetadataResponse", "ProtocolErrorBody"} <= set(components)
