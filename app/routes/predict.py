"""/predict and /predict/batch: the digit in one image, or in several."""

from collections.abc import Callable, Iterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.types import Receive, Scope, Send

from app.errors import (
    MalformedRequestError,
    RequestError,
    TooLargeError,
    UnsupportedMediaError,
    http_status,
)
from app.openapi import BINARY, errors, explain_flag, request_body
from app.pool import cheap, prepare
from app.routes import json_response
from app.schemas import BatchPrediction, Prediction
from app.service import PredictorDep, Service, ServiceDep, serving
from app.uploads import (
    Part,
    cancelled_on_disconnect,
    field_names,
    media_type_of,
    parsed,
    read_body,
    too_large,
    upload,
)

EXPLAIN = explain_flag(
    "also return the 32×32 input the network sees, every layer's activations (C1 … F6), "
    "rounded to 4 decimals, and the cleaned ink map the digit was found in"
)
# pydantic's own reading of a boolean, so /predict takes what any FastAPI boolean parameter takes.
FLAG = TypeAdapter(bool)
PREDICT_BODY = request_body(
    {"type": "object", "properties": {"file": BINARY}, "required": ["file"]},
    "image/*",
    "application/octet-stream",
    description="One image: the multipart field `file`, or the raw body with a Content-Type of "
    "image/* or application/octet-stream. PNG, JPEG, BMP, GIF, TIFF, WebP or PGM.",
)
BATCH_BODY = request_body(
    {
        "type": "object",
        "properties": {"files": {"type": "array", "items": BINARY}},
        "required": ["files"],
    },
    description="The images as repeated multipart fields `files`.",
)


class BareRoute(APIRoute):
    """A documented route whose endpoint is called with the bare Request and returns a Response,
    and nothing else happens around the call.

    FastAPI solves and validates an endpoint's declared parameters on every request and wraps
    each call in two exit stacks and an exception handler of its own; measured in-process on
    this app, that cost about as much as /health's whole path. /predict needs none of it: it
    reads its flag and its predictor itself (`openapi_extra` documents the flag), it has no
    dependencies to close, and the errors it raises reach the app's exception handlers all the
    same. The route is added to the app directly: a router
    included with `include_router` would wrap it in that machinery again.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = self._call_endpoint

    async def _call_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


router = APIRouter()


PREDICT_ROUTE: dict[str, Any] = {
    "methods": ["POST"],
    "response_model": Prediction,
    "responses": errors(400, 413, 415, 422, 500, 503),
    "openapi_extra": PREDICT_BODY | {"parameters": [EXPLAIN]},
    "tags": ["predict"],
}


async def predict(request: Request) -> Response:
    """Read the digit in one image: ten RBF distances, the digit, probabilities, rejection."""
    service: Service = request.app.state.service
    predictor, batcher, pool = serving(request)
    explain = query_flag(request, "explain")
    data = await upload(request, service.settings.max_upload_bytes)
    result: dict[str, Any] | RequestError
    if cheap(data):
        # On the event loop: a small PNG takes well under a millisecond, less than a hop to
        # a thread or a process (bench/service.py); concurrent uploads are read together.
        result = predictor.explain(data) if explain else await batcher.read(data)
    else:
        async with cancelled_on_disconnect(request):
            prepared = await prepare(pool, [data], predictor.limits(), explain)
        if prepared.errors:
            result = prepared.errors[0]
        elif explain:
            result = predictor.explain_input(prepared)
        else:
            result = predictor.answers(prepared, 1)[0]
    if isinstance(result, RequestError):
        raise result
    service.metrics.observe_prediction(result)
    return json_response(result)


def query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter, false when absent; 422 for a value that is not a boolean."""
    if not request.scope["query_string"]:
        return False  # most requests: no need to parse a query
    value = request.query_params.get(name)
    if value is None:
        return False
    try:
        return FLAG.validate_python(value)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"]
        raise MalformedRequestError(f"invalid request: query.{name}: {problem}") from None


@router.post(
    "/predict/batch",
    response_model=BatchPrediction,
    responses=errors(400, 413, 415, 422, 503),
    openapi_extra=BATCH_BODY,
    tags=["predict"],
)
async def predict_batch(request: Request, service: ServiceDep, predictor: PredictorDep) -> Response:
    """Read several images in one request; an unreadable one gets an error entry in its place."""
    pool = serving(request)[2]
    settings = service.settings
    content_type = request.headers.get("content-type", "")
    if media_type_of(content_type) != "multipart/form-data":
        raise UnsupportedMediaError("send the images as multipart/form-data fields 'files'")
    body = await read_body(request, settings.max_batch_bytes)
    # Room for a few other fields beside the images, which are counted below.
    parts = await parsed(body, content_type, settings.max_batch + 16)
    del body  # the parts hold their own copies: what BodyBudget counts is not held twice
    files = [part for part in parts if part.name == "files"]
    if not files:
        raise MalformedRequestError(f"no multipart field 'files' (fields: {field_names(parts)})")
    if len(files) > settings.max_batch:
        raise TooLargeError(f"{len(files)} images, more than the {settings.max_batch} allowed")
    limit = settings.max_upload_bytes
    fits = [part.data for part in files if len(part.data) <= limit]
    async with cancelled_on_disconnect(request):
        prepared = await prepare(pool, fits, predictor.limits())
        # One onnxruntime call for all, in a worker thread: a large batch takes long enough to
        # stall every other request if run on the event loop.
        answers = await anyio.to_thread.run_sync(predictor.answers, prepared, len(fits))
    results = batch_results(files, iter(answers), limit)
    for result in results:
        if "error" not in result:
            service.metrics.observe_prediction(result)
    return json_response({"results": results})


def batch_results(
    files: list[Part], answers: Iterator[dict[str, Any] | RequestError], limit: int
) -> list[dict[str, Any]]:
    """One entry per image: its answer, or its error beside its filename."""
    results: list[dict[str, Any]] = []
    for part in files:
        answer = next(answers) if len(part.data) <= limit else too_large("the image", limit)
        if isinstance(answer, dict):
            results.append(answer)
        else:
            error = {"status": http_status(answer), "detail": str(answer)}
            results.append({"error": error, "filename": part.filename})
    return results


def add_routes(app: FastAPI) -> None:
    """/predict on the app itself (see BareRoute), then /predict/batch."""
    app.router.add_api_route("/predict", predict, route_class_override=BareRoute, **PREDICT_ROUTE)
    app.include_router(router)
