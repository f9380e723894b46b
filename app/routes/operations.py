"""/health, /ready, /metrics and the demo page."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.openapi import errors
from app.schemas import Health, Ready
from app.service import PredictorDep, ServiceDep

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter()


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
