"""The Open Inference Protocol ("v2", as KServe, Triton, MLServer and Seldon speak it) beside the
service's own API: tritonclient, kserve and v2 gateways use the model unchanged.

The one model is `lenet5`, at the version serving. It takes exactly one of two inputs: `image`,
the network's own FP32 [N, 1, 32, 32] input already on its scale, or `upload`, BYTES [N] of image
files that go through the same preprocessing as /predict. It answers `distances` FP32 [N, 10],
`digit` INT64 [N] and `rejected` BOOL [N]. Errors answer {"error": ...} as the protocol's clients
read them, with the status app.errors gives their kind: 400 for a request or tensor that is
wrong, 404 for an unknown model, version or endpoint, 413 over a limit, 503 before the model is
loaded.
"""

from collections.abc import Callable, Coroutine
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from app.errors import (
    InvalidTensorError,
    NotReadyError,
    RequestError,
    TooLargeError,
    UnknownModelError,
    http_status,
)
from app.inference_protocol import (
    BINARY_EXTENSION,
    HEADER_LENGTH,
    InferRequest,
    TensorSpec,
    decompress,
    encode_response,
    parse_request,
)
from app.inference_schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReady,
    ProtocolErrorBody,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from app.openapi import BINARY, inline_schema
from app.pool import cheap, prepare
from app.predictor import Predictor
from app.routes import json_response
from app.uploads import cancelled_on_disconnect, read_body
from model.spec import DIGITS, INPUT_NAME, INPUT_SHAPE

if TYPE_CHECKING:
    from app.service import Service

MODEL = "lenet5"
PLATFORM = "onnxruntime_onnx"
UPLOAD = "upload"
INPUTS = {
    INPUT_NAME: TensorSpec(INPUT_NAME, "FP32", (-1, *INPUT_SHAPE)),
    UPLOAD: TensorSpec(UPLOAD, "BYTES", (-1,), base64=True),
}
OUTPUTS = {
    "distances": TensorSpec("distances", "FP32", (-1, len(DIGITS))),
    "digit": TensorSpec("digit", "INT64", (-1,)),
    "rejected": TensorSpec("rejected", "BOOL", (-1,)),
}
# A request of at most INLINE_IMAGES images in a body of at most INLINE_BODY_BYTES is answered
# on the event loop: its model run is under a millisecond, a few times the hop to a worker
# thread. Anything larger, and several files (whose decoding time their size does not tell),
# go to a worker thread, so that the other requests keep being answered (bench/service.py).
INLINE_BODY_BYTES = 64 * 1024
INLINE_IMAGES = 16


def error_response(
    message: str, status_code: int, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps({"error": message}), status_code, headers, media_type="application/json"
    )


class ProtocolRoute(APIRoute):
    """A route of the protocol: any error it meets answers {"error": ...} with its status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestError as exc:
                return error_response(str(exc), http_status(exc))

        return route


router = APIRouter(prefix="/v2", route_class=ProtocolRoute, tags=["inference protocol (v2)"])
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProtocolErrorBody, "description": text}
    for status, text in {
        400: "a request or tensor the model cannot take: the message says what is wrong",
        404: "no such model or version",
        413: "the body, an image or the batch is over its limit",
        503: "the model is not loaded",
    }.items()
}


def service_of(request: Request) -> "Service":
    return request.app.state.service


def serving(request: Request, model_name: str, model_version: str | None = None) -> Predictor:
    """The Predictor answering for `model_name` (at `model_version`); 404 for another model or
    version, 503 before the model is loaded."""
    if model_name != MODEL:
        raise UnknownModelError(f"unknown model '{model_name}': this server serves '{MODEL}'")
    predictor = service_of(request).predictor
    if predictor is None:
        raise NotReadyError("the model is not loaded")
    if model_version is not None and model_version != predictor.version:
        raise UnknownModelError(
            f"unknown version '{model_version}' of '{MODEL}': the version serving is "
            f"'{predictor.version}'"
        )
    return predictor


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> Response:
    """The server's name, version and the protocol extensions it speaks."""
    return json_response(
        {"name": MODEL, "version": package_version("lenet5"), "extensions": [BINARY_EXTENSION]}
    )


@router.get("/health/live", response_model=ServerLive, summary="Server live")
async def server_live() -> Response:
    """The process answers (it does not look at the model)."""
    return json_response({"live": True})


@router.get("/health/ready", response_model=ServerReady, responses=ERRORS, summary="Server ready")
async def server_ready(request: Request) -> Response:
    """The model is loaded and answers (503 until then)."""
    if service_of(request).predictor is None:
        raise NotReadyError("the model is not loaded")
    return json_response({"ready": True})


def model_metadata(predictor: Predictor) -> dict[str, Any]:
    return {
        "name": MODEL,
        "versions": [predictor.version],
        "platform": PLATFORM,
        "inputs": [spec.metadata() for spec in INPUTS.values()],
        "outputs": [spec.metadata() for spec in OUTPUTS.values()],
    }


@router.get(
    "/models/{model_name}",
    response_model=ModelMetadataResponse,
    responses=ERRORS,
    summary="Model metadata",
)
async def model(request: Request, model_name: str) -> Response:
    """The model's versions, platform, inputs and outputs (datatypes and shapes)."""
    return json_response(model_metadata(serving(request, model_name)))


@router.get(
    "/models/{model_name}/versions/{model_version}",
    response_model=ModelMetadataResponse,
    responses=ERRORS,
    summary="Model metadata (one version)",
)
async def model_version(request: Request, model_name: str, model_version: str) -> Response:
    """The model's metadata, for the version serving."""
    return json_response(model_metadata(serving(request, model_name, model_version)))


@router.get(
    "/models/{model_name}/ready", response_model=ModelReady, responses=ERRORS, summary="Model ready"
)
async def model_ready(request: Request, model_name: str) -> Response:
    """200 when the model can answer."""
    serving(request, model_name)
    return json_response({"name": MODEL, "ready": True})


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    response_model=ModelReady,
    responses=ERRORS,
    summary="Model ready (one version)",
)
async def model_version_ready(request: Request, model_name: str, model_version: str) -> Response:
    """200 when that version of the model can answer."""
    serving(request, model_name, model_version)
    return json_response({"name": MODEL, "ready": True})


INFER: dict[str, Any] = {
    "response_model": InferenceResponse,
    "responses": ERRORS
    | {
        200: {
            "content": {"application/octet-stream": {"schema": BINARY}},
            "description": "JSON, or with binary outputs the JSON header "
            "(Inference-Header-Content-Length bytes) then their data",
        }
    },
    "openapi_extra": {
        "parameters": [
            {
                "name": HEADER_LENGTH,
                "in": "header",
                "required": False,
                "schema": {"type": "integer", "minimum": 0},
                "description": "binary tensor data extension: the size of the JSON header, "
                "binary tensors after it",
            }
        ],
        "requestBody": {
            "required": True,
            "description": "An inference request with one input, `image` or `upload`",
            "content": {
                "application/json": {"schema": inline_schema(InferenceRequest)},
                "application/octet-stream": {"schema": BINARY},
            },
        },
    },
}


@router.post("/models/{model_name}/infer", summary="Infer", **INFER)
async def infer(request: Request, model_name: str) -> Response:
    """Read the digits of N images, given as the model's input tensor or as image files."""
    return await answer(request, serving(request, model_name))


@router.post(
    "/models/{model_name}/versions/{model_version}/infer", summary="Infer (one version)", **INFER
)
async def infer_version(request: Request, model_name: str, model_version: str) -> Response:
    """Inference with the version serving."""
    return await answer(request, serving(request, model_name, model_version))


@router.api_route(
    "/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False
)
async def unknown(request: Request, path: str) -> Response:
    # Without this, a wrong path or method would answer FastAPI's {"detail": ...}, which v2
    # clients cannot read.
    allowed = sorted(
        method
        for route in router.routes
        if isinstance(route, APIRoute)
        and route.endpoint is not unknown
        and route.path_regex.match(request.scope["path"])
        for method in route.methods or ()
    )
    if allowed:
        methods = ", ".join(allowed)
        return error_response(
            f"{request.method} is not allowed here: use {methods}", 405, {"Allow": methods}
        )
    raise UnknownModelError(f"no endpoint {request.method} /v2/{path} in the inference protocol")


async def answer(request: Request, predictor: Predictor) -> Response:
    service = service_of(request)
    settings = service.settings
    body = await read_body(request, settings.max_batch_bytes)
    header_length = request.headers.get(HEADER_LENGTH)
    encoding = request.headers.get("content-encoding")

    def parse() -> InferRequest:
        content = body if encoding is None else decompress(body, encoding, settings.max_batch_bytes)
        return parse_request(content, header_length, INPUTS, OUTPUTS, settings.max_batch)

    # A compressed body may inflate to anything up to the limit: always off the event loop.
    small = len(body) <= INLINE_BODY_BYTES and encoding is None
    parsed = parse() if small else await anyio.to_thread.run_sync(parse)
    if len(parsed.inputs) != 1:
        raise InvalidTensorError(f"send one input, '{INPUT_NAME}' or '{UPLOAD}', not both")
    tensor = next(iter(parsed.inputs.values()))

    def respond(
        distances: np.ndarray, verdicts: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[bytes, int | None]:
        """The response for the images' distances; `verdicts` (digits, rejected) when the
        uploads' reading judged them (a small scan by its own threshold), else judged here."""
        digits, rejected = predictor.verdicts(distances) if verdicts is None else verdicts
        service.metrics.observe_predictions(digits, rejected)
        arrays = {"distances": distances, "digit": digits, "rejected": rejected}
        return encode_response(
            model_name=MODEL,
            model_version=predictor.version,
            request_id=parsed.id,
            parameters={"sha256": predictor.sha256},
            outputs=[(OUTPUTS[out.name], arrays[out.name], out.binary) for out in parsed.outputs],
        )

    if isinstance(tensor.data, list):
        check_sizes(tensor.data, settings.max_upload_bytes)
        # Files are read as /predict reads them: a small PNG with the /predict uploads of the
        # same turn of the event loop, anything else in the decoder pool, bounded like theirs.
        uploads = tensor.data
        if len(uploads) == 1 and cheap(uploads[0]) and service.batcher is not None:
            result = await service.batcher.read(uploads[0])
            if isinstance(result, RequestError):
                raise unreadable(0, result)
            distances = np.array([[result["distances"][digit] for digit in DIGITS]], np.float32)
            verdicts = np.array([result["digit"]], np.int64), np.array([result["rejected"]])
        else:
            pool = service.pool
            if pool is None:
                raise NotReadyError("the model is not loaded")
            async with cancelled_on_disconnect(request):
                prepared = await prepare(pool, uploads, predictor.limits())
            if prepared.errors:
                first = min(prepared.errors)
                raise unreadable(first, prepared.errors[first])
            distances = await anyio.to_thread.run_sync(predictor.run, prepared.inputs)
            verdicts = predictor.verdicts(distances, prepared.low_resolution)
        content, json_size = respond(distances, verdicts)
    elif small and len(tensor.data) <= INLINE_IMAGES:
        content, json_size = respond(distances_of(predictor, tensor.data))
    else:
        images = tensor.data
        content, json_size = await anyio.to_thread.run_sync(
            lambda: respond(distances_of(predictor, images))
        )
    if json_size is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(json_size)}
    )


def distances_of(predictor: Predictor, images: np.ndarray) -> np.ndarray:
    """(N, 10) distances for the images of an `image` tensor."""
    check_range(images, predictor)
    return predictor.run(images)


# How far outside [background, ink] an input may stray, as a fraction of that range: rounding
# when a client scales grey levels itself, and no more.
RANGE_SLACK = 1e-3


def check_range(images: np.ndarray, predictor: Predictor) -> None:
    """The network's input lies between paper and full ink; anything else is another scale."""
    spec = predictor.spec
    slack = RANGE_SLACK * (spec.ink - spec.background)
    low, high = float(images.min()), float(images.max())
    step = (spec.ink - spec.background) / 255
    if low < spec.background - slack or high > spec.ink + slack:
        raise InvalidTensorError(
            f"input '{INPUT_NAME}' holds values from {low:g} to {high:g}; the model's input "
            f"lies from {spec.background:g} (paper) to {spec.ink:g} (full ink): scale grey "
            f"levels g of 0..255 as {spec.background:g} + g × {step:.6g}, or send the files as "
            f"'{UPLOAD}'"
        )


def check_sizes(uploads: list[bytes], limit: int) -> None:
    for index, upload in enumerate(uploads):
        if len(upload) > limit:
            raise TooLargeError(
                f"upload {index} is {len(upload)} bytes, more than the {limit} allowed for an image"
            )


def unreadable(index: int, error: RequestError) -> RequestError:
    """An upload the preprocessing refused, named by its index: still too large if it was,
    else a bad tensor (400), as the protocol has it where the rest of the API tells 415 and 422
    apart."""
    kind = TooLargeError if isinstance(error, TooLargeError) else InvalidTensorError
    return kind(f"upload {index}: {error}")
