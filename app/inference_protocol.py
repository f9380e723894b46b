"""The Open Inference Protocol (the "v2" predict protocol of KServe and Triton), REST form, with
its binary tensor data extension: request bodies in, numpy tensors out, and answers back.

No web framework here: the bytes of a body and its Inference-Header-Content-Length header in,
an `InferRequest` out, or an app.errors kind saying what is wrong (InvalidTensorError for a bad
request or tensor); output tensors in, the bytes of the answer and its header out. The model's
own signature (names, datatypes, shapes) is given by the caller as TensorSpecs, so every input
is checked against it before any of its data is read.

Binary tensors follow the extension: little-endian, row-major, no padding; BOOL one byte per
element; BYTES a 4-byte little-endian length before each element. They follow the JSON header
in the order of the inputs (or outputs) that carry `binary_data_size`.
"""

import binascii
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from app.errors import InvalidTensorError, TooLargeError, UnsupportedMediaError

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_EXTENSION = "binary_tensor_data"
# The fixed-size datatypes this module reads and writes, as little-endian numpy types.
DTYPES = {
    "BOOL": np.dtype("?"),
    "INT64": np.dtype("<i8"),
    "FP32": np.dtype("<f4"),
}
BYTES = "BYTES"
# numpy kinds that a JSON `data` array may hold for each datatype: JSON has one number type, so
# an integer is a fine FP32 element, but `true` is not a number and 1.5 is not an INT64.
_JSON_KINDS = {"BOOL": "b", "INT64": "i", "FP32": "iuf"}
_LENGTH = np.dtype("<u4")  # the length prefix of a BYTES element


@dataclass(frozen=True)
class TensorSpec:
    """A tensor of the model's signature. -1 in `shape` is a dimension of any size (the batch).

    A BYTES element in JSON is a string; with `base64` it is the element's bytes in base64, the
    only way binary content such as an image file can travel in a JSON string.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    base64: bool = False

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Tensor:
    """A decoded input: an ndarray of the spec's dtype and shape, or for BYTES a list of bytes."""

    name: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: dict[str, Tensor]
    outputs: tuple[RequestedOutput, ...]


# Content-Encodings tritonclient can compress a request with, as zlib window bits.
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "identity": 0}


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body of a request sent with Content-Encoding `encoding`, refused (413) as soon as it
    inflates past `limit` bytes: a small bomb is never inflated whole."""
    wbits = ENCODINGS.get(encoding.strip().lower())
    if wbits is None:
        raise UnsupportedMediaError(
            f"unsupported Content-Encoding {encoding!r}: send gzip, deflate or identity"
        )
    if not wbits:
        return body
    inflater = zlib.decompressobj(wbits)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidTensorError(f"the body is not valid {encoding} data: {exc}") from None
    if len(inflated) > limit:
        raise TooLargeError(f"the body inflates to more than the {limit} bytes allowed")
    if not inflater.eof:
        raise InvalidTensorError(f"the {encoding} body is truncated")
    return inflated


def parse_request(
    body: bytes,
    header_length: str | None,
    inputs: Mapping[str, TensorSpec],
    outputs: Mapping[str, TensorSpec],
    max_batch: int,
) -> InferRequest:
    """An inference request checked against the model's inputs and outputs.

    `header_length` is the Inference-Header-Content-Length header, if any: the JSON header's
    size, binary tensor data after it. The first dimension of every input (the batch) may be
    at most `max_batch` (413 beyond).
    """
    json_end = len(body) if header_length is None else _header_length(header_length, len(body))
    view = memoryview(body)
    try:
        document = orjson.loads(view[:json_end])
    except orjson.JSONDecodeError as exc:
        where = "the JSON header" if header_length is not None else "the body"
        raise InvalidTensorError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidTensorError("the inference request must be a JSON object")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidTensorError("`id` must be a string")
    parameters = _parameters(document.get("parameters"), "the request's `parameters`")
    requested = document.get("inputs")
    if not isinstance(requested, list) or not requested:
        raise InvalidTensorError("`inputs` must be a non-empty list of tensors")
    binary = _Binary(view, json_end)
    decoded: dict[str, Tensor] = {}
    for index, tensor in enumerate(requested):
        decoded_tensor = _input(tensor, index, inputs, binary, max_batch)
        if decoded_tensor.name in decoded:
            raise InvalidTensorError(f"input '{decoded_tensor.name}' is given twice")
        decoded[decoded_tensor.name] = decoded_tensor
    binary.check_consumed()
    default_binary = parameters.get("binary_data_output", False)
    if not isinstance(default_binary, bool):
        raise InvalidTensorError("the parameter `binary_data_output` must be a boolean")
    return InferRequest(
        id=request_id,
        parameters=parameters,
        inputs=decoded,
        outputs=_requested_outputs(document.get("outputs"), outputs, default_binary),
    )


def _header_length(value: str, body_size: int) -> int:
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise InvalidTensorError(f"{HEADER_LENGTH} must be a number of bytes, not {value!r}")
    length = int(value)
    if length > body_size:
        raise InvalidTensorError(
            f"{HEADER_LENGTH} is {length} but the body has only {body_size} bytes"
        )
    return length


def _parameters(value: object, what: str) -> dict[str, Any]:
    """A $parameters object: string keys, each a string, number or boolean."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidTensorError(f"{what} must be an object")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise InvalidTensorError(f"{what}: `{key}` must be a string, number or boolean")
    return value


class _Binary:
    """The binary tensor data after the JSON header, handed out in order."""

    def __init__(self, view: memoryview, start: int) -> None:
        self.view = view
        self.position = start
        self.used = False

    def take(self, size: object, name: str) -> memoryview:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidTensorError(
                f"input '{name}': binary_data_size must be a non-negative integer"
            )
        left = len(self.view) - self.position
        if size > left:
            raise InvalidTensorError(
                f"input '{name}': binary_data_size is {size} bytes but only {left} bytes of "
                f"binary data are left in the body"
                + ("" if self.used or left else f" (is the {HEADER_LENGTH} header missing?)")
            )
        self.used = True
        chunk = self.view[self.position : self.position + size]
        self.position += size
        return chunk

    def check_consumed(self) -> None:
        left = len(self.view) - self.position
        if left:
            raise InvalidTensorError(
                f"{left} bytes of binary data after the JSON header belong to no input: the "
                f"inputs' binary_data_size must add up to the body's size after "
                f"{HEADER_LENGTH}"
            )


def _input(
    tensor: object,
    index: int,
    inputs: Mapping[str, TensorSpec],
    binary: _Binary,
    max_batch: int,
) -> Tensor:
    if not isinstance(tensor, dict):
        raise InvalidTensorError(f"inputs[{index}] must be an object")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InvalidTensorError(f"inputs[{index}] has no string `name`")
    spec = inputs.get(name)
    if spec is None:
        known = ", ".join(f"'{known}'" for known in inputs)
        raise InvalidTensorError(f"unknown input '{name}': the model's inputs are {known}")
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        raise InvalidTensorError(f"input '{name}' must be {spec.datatype}, not {datatype!r}")
    shape = _shape(tensor.get("shape"), spec, max_batch)
    parameters = _parameters(tensor.get("parameters"), f"input '{name}': `parameters`")
    count = math.prod(shape)
    if "binary_data_size" in parameters:
        if "data" in tensor:
            raise InvalidTensorError(f"input '{name}' has both `data` and binary_data_size")
        chunk = binary.take(parameters["binary_data_size"], name)
        if spec.datatype == BYTES:
            return Tensor(name, shape, _binary_bytes(chunk, count, name))
        return Tensor(name, shape, _binary_fixed(chunk, spec, shape, count))
    if "data" not in tensor:
        raise InvalidTensorError(f"input '{name}' has neither `data` nor binary_data_size")
    if spec.datatype == BYTES:
        return Tensor(name, shape, _json_bytes(tensor["data"], spec, shape, count))
    return Tensor(name, shape, _json_fixed(tensor["data"], spec, shape, count))


def _shape(value: object, spec: TensorSpec, max_batch: int) -> tuple[int, ...]:
    expected = "[" + ", ".join("N" if d < 0 else str(d) for d in spec.shape) + "]"
    if (
        not isinstance(value, list)
        or len(value) != len(spec.shape)
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in value)
    ):
        raise InvalidTensorError(f"input '{spec.name}' must have shape {expected}, not {value}")
    shape = tuple(value)
    if any(want >= 0 and got != want for got, want in zip(shape, spec.shape, strict=True)):
        raise InvalidTensorError(
            f"input '{spec.name}' must have shape {expected}, not {list(shape)}"
        )
    if shape[0] < 1:
        raise InvalidTensorError(f"input '{spec.name}' holds no elements: shape {list(shape)}")
    if shape[0] > max_batch:
        raise TooLargeError(
            f"input '{spec.name}' has {shape[0]} elements in its first dimension, more than "
            f"the {max_batch} allowed in one request"
        )
    return shape


def _binary_fixed(
    chunk: memoryview, spec: TensorSpec, shape: tuple[int, ...], count: int
) -> np.ndarray:
    dtype = DTYPES[spec.datatype]
    if len(chunk) != count * dtype.itemsize:
        raise InvalidTensorError(
            f"input '{spec.name}': shape {list(shape)} of {spec.datatype} is "
            f"{count * dtype.itemsize} bytes, but binary_data_size is {len(chunk)}"
        )
    array = np.frombuffer(chunk, dtype).reshape(shape)
    if not array.flags.aligned:
        # The JSON header may have any length: a copy lines the elements up for onnxruntime.
        array = array.copy()
    return _checked(array, spec)


def _binary_bytes(chunk: memoryview, count: int, name: str) -> list[bytes]:
    elements: list[bytes] = []
    position, end = 0, len(chunk)
    while position < end:
        if end - position < _LENGTH.itemsize:
            raise InvalidTensorError(
                f"input '{name}': element {len(elements)} lacks its 4-byte length"
            )
        size = int(np.frombuffer(chunk, _LENGTH, 1, position)[0])
        position += _LENGTH.itemsize
        if size > end - position:
            raise InvalidTensorError(
                f"input '{name}': element {len(elements)} claims {size} bytes but only "
                f"{end - position} are left in its binary data"
            )
        elements.append(bytes(chunk[position : position + size]))
        position += size
    if len(elements) != count:
        raise InvalidTensorError(
            f"input '{name}': its shape has {count} elements, its binary data {len(elements)}"
        )
    return elements


def _json_fixed(data: object, spec: TensorSpec, shape: tuple[int, ...], count: int) -> np.ndarray:
    if not isinstance(data, list):
        raise InvalidTensorError(f"input '{spec.name}': `data` must be a list")
    try:
        array = np.asarray(data)
    except ValueError:  # ragged nesting
        raise InvalidTensorError(
            f"input '{spec.name}': `data` must be a flat list or nested lists of shape "
            f"{list(shape)}"
        ) from None
    if array.size and array.dtype.kind not in _JSON_KINDS[spec.datatype]:
        raise InvalidTensorError(
            f"input '{spec.name}': `data` must hold only {spec.datatype} values"
        )
    if array.shape != shape and (array.ndim != 1 or array.size != count):
        raise InvalidTensorError(
            f"input '{spec.name}': shape {list(shape)} has {count} elements; `data` has "
            f"{array.size}" + (f" in shape {list(array.shape)}" if array.ndim > 1 else "")
        )
    with np.errstate(over="ignore"):  # a value beyond FP32 becomes inf, refused just below
        return _checked(array.astype(DTYPES[spec.datatype]).reshape(shape), spec)


def _json_bytes(data: object, spec: TensorSpec, shape: tuple[int, ...], count: int) -> list[bytes]:
    elements = _flat(data, shape) if isinstance(data, list) and len(data) != count else data
    if (
        not isinstance(elements, list)
        or len(elements) != count
        or not all(isinstance(element, str) for element in elements)
    ):
        raise InvalidTensorError(
            f"input '{spec.name}': `data` must be {count} strings, as a flat list or nested "
            f"lists of shape {list(shape)}"
        )
    if not spec.base64:
        return [element.encode() for element in elements]
    decoded: list[bytes] = []
    for index, element in enumerate(elements):
        try:
            decoded.append(binascii.a2b_base64(element, strict_mode=True))
        except (binascii.Error, ValueError):
            raise InvalidTensorError(
                f"input '{spec.name}': element {index} is not base64; in JSON each element is "
                f"the file in base64, or send it as binary data (binary_data_size)"
            ) from None
    return decoded


def _flat(data: list[Any], shape: tuple[int, ...]) -> list[Any] | None:
    """The elements of `data` nested as `shape`, row-major; None if it is not so nested."""
    if len(shape) == 1:
        return data if len(data) == shape[0] else None
    if len(data) != shape[0]:
        return None
    elements: list[Any] = []
    for row in data:
        flat = _flat(row, shape[1:]) if isinstance(row, list) else None
        if flat is None:
            return None
        elements += flat
    return elements


def _checked(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    if array.dtype.kind == "f" and array.size:
        # min and max are NaN or infinite if any element is: two passes, no mask.
        low, high = array.min(), array.max()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InvalidTensorError(f"input '{spec.name}' holds NaN or infinite values")
    return array


def _requested_outputs(
    value: object, outputs: Mapping[str, TensorSpec], default_binary: bool
) -> tuple[RequestedOutput, ...]:
    if value is None:
        return tuple(RequestedOutput(name, default_binary) for name in outputs)
    if not isinstance(value, list) or not value:
        raise InvalidTensorError("`outputs`, when given, must be a non-empty list")
    requested: list[RequestedOutput] = []
    for index, output in enumerate(value):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise InvalidTensorError(f"outputs[{index}] must be an object with a string `name`")
        name = output["name"]
        if name not in outputs:
            known = ", ".join(f"'{known}'" for known in outputs)
            raise InvalidTensorError(f"unknown output '{name}': the model's outputs are {known}")
        if any(earlier.name == name for earlier in requested):
            raise InvalidTensorError(f"output '{name}' is requested twice")
        parameters = _parameters(output.get("parameters"), f"output '{name}': `parameters`")
        if "classification" in parameters:
            raise InvalidTensorError("the classification extension is not supported")
        binary = parameters.get("binary_data", default_binary)
        if not isinstance(binary, bool):
            raise InvalidTensorError(f"output '{name}': binary_data must be a boolean")
        requested.append(RequestedOutput(name, binary))
    return tuple(requested)


def encode_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    parameters: Mapping[str, Any],
    outputs: Sequence[tuple[TensorSpec, np.ndarray, bool]],
) -> tuple[bytes, int | None]:
    """The inference response: its body, and the JSON header's length when binary output data
    follows it (the value of Inference-Header-Content-Length), else None.

    `outputs` are (spec, array, binary) in the order to answer them. JSON `data` is flat,
    row-major.
    """
    tensors = []
    chunks = []
    for spec, array, binary in outputs:
        array = np.ascontiguousarray(array, DTYPES[spec.datatype])
        tensor: dict[str, Any] = {
            "name": spec.name,
            "datatype": spec.datatype,
            "shape": list(array.shape),
        }
        if binary:
            chunk = array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            tensor["data"] = array.reshape(-1)
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = dict(parameters)
    document["outputs"] = tensors
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
