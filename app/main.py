"""The lenet5 web service: FastAPI on onnxruntime, never torch.

    uvicorn --factory app.main:create_app        (or: lenet5 serve)

One Predictor serves at a time. A reload (POST /model/reload, or SIGHUP) builds and checks a
new one in a worker thread and then swaps the reference; requests already holding the old one
finish on it, so a reload drops nothing, and a refused file leaves the old model serving.
"""

import asyncio
import gc
import hmac
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter, ValidationError
from starlette.types import Receive, Scope, Send

from app.batching import Batcher
from app.errors import (
    MalformedRequestError,
    ModelRefusedError,
    NotAllowedError,
    NotReadyError,
    RequestError,
    TooLargeError,
    UnauthenticatedError,
    UnsupportedMediaError,
    http_status,
)
from app.handlers import HANDLERS
from app.metrics import Metrics, MetricsMiddleware
from app.predictor import ModelError, Predictor
from app.schemas import (
    BatchPrediction,
    Error,
    Health,
    ModelInfo,
    Prediction,
    Ready,
    Reloaded,
)
from app.settings import Settings
from app.uploads import Part, parse_multipart, read_body, too_large

log = logging.getLogger("lenet5")
STATIC = Path(__file__).parent / "static"
RAW_TYPES = "image/* or application/octet-stream"


@dataclass
class Service:
    """What the routes share: the settings, the metrics, the Predictor now serving and the
    Batcher that runs its model for /predict."""

    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    predictor: Predictor | None = None
    batcher: Batcher[dict[str, Any] | RequestError] | None = None
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    def load(self) -> Predictor:
        settings = self.settings
        return Predictor.load(
            settings.model_path, threads=settings.threads, max_pixels=settings.max_image_pixels
        )

    def serve(self, predictor: Predictor) -> None:
        # Plain assignments, with no await between them: a request sees the old pair or the
        # new one, never a mix.
        self.batcher = Batcher(predictor.predict_many, self.metrics.batch_sizes.observe)
        self.predictor = predictor
        self.metrics.serving(predictor.version, predictor.sha256)
        log.info("serving model %s (sha256 %s) from %s", predictor.version, predictor.sha256,
                 predictor.path)  # fmt: skip

    async def reload(self) -> dict[str, Any]:
        """Load, check and serve the model file again; ModelError leaves the old one serving."""
        async with self.reloading:
            old = self.predictor
            try:
                new = await anyio.to_thread.run_sync(self.load)
            except ModelError as exc:
                self.metrics.reloads.labels("refused").inc()
                log.error("reload refused, still serving %s: %s", old and old.version, exc)
                raise
            self.serve(new)
            self.metrics.reloads.labels("ok").inc()
        return {
            "version": new.version,
            "sha256": new.sha256,
            "changed": old is None or new.sha256 != old.sha256,
            "previous_version": old.version if old else "",
            "previous_sha256": old.sha256 if old else "",
        }

    def reload_in_background(self) -> None:
        """SIGHUP: reload without a caller to answer; the outcome is logged and counted."""
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_quietly(self) -> None:
        with suppress(ModelError):  # already logged and counted by reload()
            await self.reload()

    def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        self.predictor = None
        self.batcher = None


@contextmanager
def reload_on_sighup(service: Service) -> Iterator[None]:
    """Reload on SIGHUP while serving; each uvicorn worker handles the signals sent to it."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGHUP)
    try:
        loop.add_signal_handler(signal.SIGHUP, service.reload_in_background)
    except (ValueError, RuntimeError):
        # Only the main thread can take signals: a TestClient runs the app in another one.
        log.info("not in the main thread: SIGHUP will not reload the model")
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.service
    # A model that does not load stops the start: better no server than one that never answers.
    service.serve(service.load())
    service.reloading = asyncio.Lock()  # bound to this event loop, the one serving
    # Everything loaded so far lives as long as the process: frozen, the garbage collector
    # stops walking it on every full collection, each of which took ~45 ms under load.
    gc.collect()
    gc.freeze()
    with reload_on_sighup(service):
        yield
    service.stop()


# Dependencies are `async def`: FastAPI runs a plain `def` one in a worker thread, a hop that
# cost more than the whole prediction.
async def get_service(request: Request) -> Service:
    return request.app.state.service


def serving(request: Request) -> tuple[Predictor, Batcher[dict[str, Any] | RequestError]]:
    """The Predictor serving now and its Batcher; 503 before the model is loaded."""
    service: Service = request.app.state.service
    if service.predictor is None or service.batcher is None:
        raise NotReadyError("the model is not loaded")
    return service.predictor, service.batcher


async def get_predictor(request: Request) -> Predictor:
    return serving(request)[0]


ServiceDep = Annotated[Service, Depends(get_service)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
EXPLAIN = {
    "name": "explain",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "also return the 32×32 input the network sees and every layer's "
    "activations (C1 … F6), rounded to 4 decimals",
}
# pydantic's own reading of a boolean, so /predict takes what any FastAPI boolean parameter takes.
FLAG = TypeAdapter(bool)
bearer = HTTPBearer(auto_error=False, description="the token set in LENET5_RELOAD_TOKEN")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, each with the Error model."""
    texts = {
        400: "an invalid Content-Length, or the client left before sending the whole body",
        401: "missing or wrong bearer token",
        403: "reloading over HTTP is off (no LENET5_RELOAD_TOKEN)",
        409: "the model file was refused; the previous model keeps serving",
        413: "the body, the image's pixels or the batch is over its limit",
        415: "not an image in a supported format, or an unsupported Content-Type",
        422: "a damaged image, an image without ink, a malformed multipart body, a missing "
        "field or an invalid parameter",
        503: "the model is not loaded",
    }
    return {status: {"model": Error, "description": texts[status]} for status in statuses}


BINARY = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}


def request_body(multipart: dict[str, Any], *raw: str, description: str) -> dict[str, Any]:
    content = {"multipart/form-data": {"schema": multipart}}
    content |= {media_type: {"schema": BINARY} for media_type in raw}
    return {"requestBody": {"required": True, "description": description, "content": content}}


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
    each call in two exit stacks and an exception handler of its own. Measured in-process on
    this app, an endpoint declaring a boolean query flag and one dependency took ~128 µs a
    request, as long as /health's whole path (~126 µs); one taking the bare Request ~85 µs.
    /predict needs none of that: it reads its flag and its predictor itself (`openapi_extra`
    documents the flag), it has no dependencies to close, and the errors it raises reach the
    app's exception handlers all the same. The route is added to the app directly: a router
    included with `include_router` would wrap it in that machinery again.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = self._call_endpoint

    async def _call_endpoint(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


router = APIRouter()


def json_response(content: Any, status_code: int = 200) -> Response:
    # orjson, straight from the dict: FastAPI's response-model path would validate it again.
    return Response(orjson.dumps(content), status_code, media_type="application/json")


PREDICT_ROUTE: dict[str, Any] = {
    "methods": ["POST"],
    "response_model": Prediction,
    "responses": errors(400, 413, 415, 422, 503),
    "openapi_extra": PREDICT_BODY | {"parameters": [EXPLAIN]},
    "tags": ["predict"],
}


async def predict(request: Request) -> Response:
    """Read the digit in one image: ten RBF distances, the digit, probabilities, rejection."""
    service: Service = request.app.state.service
    predictor, batcher = serving(request)
    explain = query_flag(request, "explain")
    data = await upload(request, service.settings.max_upload_bytes)
    # On the event loop, not in a thread: a digit takes well under a millisecond, less than a
    # thread hop (bench/service.py); the uploads of concurrent requests are read together.
    result = predictor.explain(data) if explain else await batcher.read(data)
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


async def upload(request: Request, limit: int) -> bytes:
    """The one image of a /predict request, from multipart field `file` or the raw body."""
    content_type = request.headers.get("content-type", "")
    media_type = media_type_of(content_type)
    if media_type == "multipart/form-data":
        parts = parse_multipart(await read_body(request, limit), content_type)
        files = [part for part in parts if part.name == "file"]
        if len(files) != 1:
            raise MalformedRequestError(
                "send exactly one image in the multipart field 'file' "
                f"(fields: {field_names(parts)}); several images go to /predict/batch",
            )  # fmt: skip
        return files[0].data
    if media_type.startswith("image/") or media_type == "application/octet-stream":
        return await read_body(request, limit)
    raise UnsupportedMediaError(
        f"unsupported Content-Type {media_type or '(none)'}: send the image as the body "
        f"({RAW_TYPES}) or as the multipart/form-data field 'file'",
    )  # fmt: skip


def media_type_of(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def field_names(parts: list[Part]) -> str:
    return ", ".join(repr(part.name) for part in parts) or "none"


@router.post(
    "/predict/batch",
    response_model=BatchPrediction,
    responses=errors(400, 413, 415, 422, 503),
    openapi_extra=BATCH_BODY,
    tags=["predict"],
)
async def predict_batch(request: Request, service: ServiceDep, predictor: PredictorDep) -> Response:
    """Read several images in one request; an unreadable one gets an error entry in its place."""
    settings = service.settings
    content_type = request.headers.get("content-type", "")
    if media_type_of(content_type) != "multipart/form-data":
        raise UnsupportedMediaError("send the images as multipart/form-data fields 'files'")
    parts = parse_multipart(await read_body(request, settings.max_batch_bytes), content_type)
    files = [part for part in parts if part.name == "files"]
    if not files:
        raise MalformedRequestError(f"no multipart field 'files' (fields: {field_names(parts)})")
    if len(files) > settings.max_batch:
        raise TooLargeError(f"{len(files)} images, more than the {settings.max_batch} allowed")
    # One onnxruntime call for all, in a worker thread: a large batch takes long enough to
    # stall every other request if run on the event loop.
    results = await anyio.to_thread.run_sync(batch, predictor, files, settings.max_upload_bytes)
    for result in results:
        if "error" not in result:
            service.metrics.observe_prediction(result)
    return json_response({"results": results})


def batch(predictor: Predictor, files: list[Part], limit: int) -> list[dict[str, Any]]:
    fits = [part for part in files if len(part.data) <= limit]
    answers = iter(predictor.predict_many([part.data for part in fits]))
    results: list[dict[str, Any]] = []
    for part in files:
        answer = next(answers) if len(part.data) <= limit else too_large("the image", limit)
        if isinstance(answer, dict):
            results.append(answer)
        else:
            error = {"status": http_status(answer), "detail": str(answer)}
            results.append({"error": error, "filename": part.filename})
    return results


@router.get("/model", response_model=ModelInfo, responses=errors(503), tags=["model"])
async def model(predictor: PredictorDep) -> Response:
    """The network serving: layers, Table I, squashing, RBF bitmaps, training results."""
    return json_response(predictor.describe())


@router.post(
    "/model/reload",
    response_model=Reloaded,
    responses=errors(401, 403, 409),
    tags=["model"],
)
async def reload_model(service: ServiceDep, credentials: BearerDep) -> dict[str, Any]:
    """Load the model file again, check it, and serve it without dropping a request."""
    token = service.settings.reload_token
    if token is None:
        raise NotAllowedError("reloading over HTTP is off: set LENET5_RELOAD_TOKEN to allow it")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise UnauthenticatedError("a valid bearer token is needed")
    try:
        return await service.reload()
    except ModelError as exc:
        serving = service.predictor.version if service.predictor else "nothing"
        raise ModelRefusedError(f"model refused, still serving {serving}: {exc}") from exc


@router.get("/health", response_model=Health, tags=["operations"])
async def health() -> dict[str, str]:
    """Alive: the process answers (it does not look at the model)."""
    return {"status": "ok"}


@router.get("/ready", response_model=Ready, responses=errors(503), tags=["operations"])
async def ready(predictor: PredictorDep) -> dict[str, str]:
    """Ready to serve: a model is loaded (503 until then)."""
    return {"status": "ready", "version": predictor.version, "sha256": predictor.sha256}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                     "description": "Prometheus text format"}},
    tags=["operations"],
)  # fmt: skip
async def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics: requests and latency by route and status, digits, rejections."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service; `settings` defaults to the LENET5_* environment."""
    service = Service(settings or Settings())
    app = FastAPI(
        title="lenet5",
        version=package_version("lenet5"),
        summary="Handwritten digit recognition with LeNet-5 (LeCun et al., 1998)",
        description=__doc__,
        lifespan=lifespan,
        exception_handlers=HANDLERS,
    )
    app.state.service = service
    app.router.add_api_route("/predict", predict, route_class_override=BareRoute, **PREDICT_ROUTE)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if service.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=service.settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app
