"""The inference protocol's codec on its own: what it reads, what it writes, and that anything
else is a RequestError of a 4xx kind, never another exception (a 500)."""

import gzip
import struct
import zlib

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidTensorError, RequestError, TooLargeError, http_status
from app.inference_protocol import (
    TensorSpec,
    decompress,
    encode_response,
    parse_request,
)

INPUTS = {
    "image": TensorSpec("image", "FP32", (-1, 1, 4, 4)),
    "upload": TensorSpec("upload", "BYTES", (-1,), base64=True),
}
OUTPUTS = {
    "distances": TensorSpec("distances", "FP32", (-1, 3)),
    "digit": TensorSpec("digit", "INT64", (-1,)),
    "rejected": TensorSpec("rejected", "BOOL", (-1,)),
}


def parse(document: object, binary: bytes = b"", header: str | None = None, max_batch: int = 8):
    body = orjson.dumps(document)
    if binary and header is None:
        header = str(len(body))
    return parse_request(body + binary, header, INPUTS, OUTPUTS, max_batch)


def test_binary_fp32_after_a_header_of_any_length_reads_aligned() -> None:
    images = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4) / 32
    data = images.tobytes()
    for padding in range(4):  # header lengths of every remainder modulo 4
        tensor = {"name": "image", "shape": [2, 1, 4, 4], "datatype": "FP32",
                  "parameters": {"binary_data_size": len(data)}}  # fmt: skip
        request = parse({"inputs": [tensor], "id": "x" * padding}, data)
        got = request.inputs["image"].data
        assert isinstance(got, np.ndarray) and got.flags.aligned and got.dtype == np.float32
        np.testing.assert_array_equal(got, images)


def test_json_data_flat_or_nested_reads_the_same() -> None:
    images = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 1, 4, 4)
    flat = {
        "name": "image",
        "shape": [1, 1, 4, 4],
        "datatype": "FP32",
        "data": images.ravel().tolist(),
    }
    nested = flat | {"data": images.tolist()}
    for tensor in (flat, nested):
        np.testing.assert_array_equal(parse({"inputs": [tensor]}).inputs["image"].data, images)
    wrong_nesting = flat | {"data": images.reshape(1, 1, 2, 8).tolist()}
    with pytest.raises(InvalidTensorError, match="in shape"):
        parse({"inputs": [wrong_nesting]})
    ragged = flat | {"data": [[0.0] * 8, [0.0] * 7]}
    with pytest.raises(InvalidTensorError, match="nested lists"):
        parse({"inputs": [ragged]})


def test_binary_bytes_elements_are_split_by_their_lengths() -> None:
    files = [b"", b"\x89PNG\r\n", bytes(range(256)) * 3]
    framed = b"".join(struct.pack("<I", len(f)) + f for f in files)
    tensor = {"name": "upload", "shape": [3], "datatype": "BYTES",
              "parameters": {"binary_data_size": len(framed)}}  # fmt: skip
    assert parse({"inputs": [tensor]}, framed).inputs["upload"].data == files


def test_outputs_default_to_all_and_binary_data_output_sets_their_form() -> None:
    tensor = {"name": "upload", "shape": [1], "datatype": "BYTES", "data": ["AA=="]}
    plain = parse({"inputs": [tensor]})
    assert [(o.name, o.binary) for o in plain.outputs] == [
        ("distances", False), ("digit", False), ("rejected", False)
    ]  # fmt: skip
    request = parse({
        "inputs": [tensor],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "rejected"}, {"name": "digit", "parameters": {"binary_data": False}}],
    })  # fmt: skip
    assert [(o.name, o.binary) for o in request.outputs] == [("rejected", True), ("digit", False)]
    assert request.inputs["upload"].data == [b"\0"]


def test_the_batch_limit_is_checked_from_the_shape() -> None:
    tensor = {"name": "image", "shape": [9, 1, 4, 4], "datatype": "FP32", "data": []}
    with pytest.raises(TooLargeError, match="more than the 8 allowed"):
        parse({"inputs": [tensor]})


def test_encode_response_puts_binary_outputs_after_the_header_in_order() -> None:
    distances = np.array([[1.5, 2.5, 0.25]], np.float32)
    digit = np.array([2], np.int64)
    rejected = np.array([True])
    body, header_length = encode_response(
        model_name="m",
        model_version="1",
        request_id="42",
        parameters={"sha256": "ab"},
        outputs=[(OUTPUTS["digit"], digit, True), (OUTPUTS["distances"], distances, False),
                 (OUTPUTS["rejected"], rejected, True)],
    )  # fmt: skip
    assert header_length is not None
    header = orjson.loads(body[:header_length])
    assert header["id"] == "42" and header["model_version"] == "1"
    assert header["parameters"] == {"sha256": "ab"}
    assert header["outputs"][0] == {"name": "digit", "datatype": "INT64", "shape": [1],
                                    "parameters": {"binary_data_size": 8}}  # fmt: skip
    assert header["outputs"][1]["data"] == [1.5, 2.5, 0.25]
    assert body[header_length:] == struct.pack("<q", 2) + b"\x01"
    json_only, none = encode_response(
        model_name="m", model_version="1", request_id=None, parameters={},
        outputs=[(OUTPUTS["rejected"], rejected, False)],
    )  # fmt: skip
    assert none is None and orjson.loads(json_only)["outputs"][0]["data"] == [True]
    assert "id" not in orjson.loads(json_only)


def test_decompress_reads_gzip_and_deflate_and_stops_a_bomb_early() -> None:
    body = b'{"inputs": []}'
    assert decompress(gzip.compress(body), "gzip", 100) == body
    assert decompress(zlib.compress(body), "deflate", 100) == body
    assert decompress(body, "identity", 100) == body
    bomb = gzip.compress(b"\0" * 50_000_000)  # 48 KiB that inflate to 50 MB
    with pytest.raises(TooLargeError, match="more than the 1000 bytes"):
        decompress(bomb, "gzip", 1000)
    with pytest.raises(InvalidTensorError, match="truncated"):
        decompress(gzip.compress(body)[:-10], "gzip", 100)
    with pytest.raises(InvalidTensorError, match="not valid gzip"):
        decompress(b"plain", "gzip", 100)


# JSON-like documents built from the protocol's own words, so that the generator reaches deep
# into the parser instead of failing at the first key.
WORDS = st.sampled_from(
    ["inputs", "outputs", "name", "shape", "datatype", "data", "parameters", "id", "image",
     "upload", "FP32", "BYTES", "INT64", "binary_data_size", "binary_data", "binary_data_output",
     "distances", "classification"]
)  # fmt: skip
LEAVES = st.none() | st.booleans() | st.integers(-5, 40) | st.floats() | WORDS | st.text(max_size=4)
DOCUMENTS = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(WORDS, children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(document=DOCUMENTS, tail=st.binary(max_size=80), header=st.none() | st.text(max_size=4))
def test_any_request_either_parses_or_is_a_protocol_error(document, tail, header) -> None:
    try:
        body = orjson.dumps(document)
    except orjson.JSONEncodeError:  # NaN and infinities: not JSON
        body = repr(document).encode()
    if header is None and tail:
        header = str(len(body))
    try:
        request = parse_request(body + tail, header, INPUTS, OUTPUTS, 8)
    except RequestError as exc:
        assert 400 <= http_status(exc) < 500 and str(exc)
        return
    for tensor in request.inputs.values():
        if isinstance(tensor.data, np.ndarray):
            assert tensor.data.shape == tensor.shape and np.isfinite(tensor.data).all()
