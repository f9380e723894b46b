"""/model and /model/reload: the network serving, and serving a new file without a restart."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from app.errors import ModelRefusedError
from app.openapi import errors
from app.predictor import ModelError
from app.routes import BearerDep, authorise, json_response
from app.schemas import ModelInfo, Reloaded
from app.service import PredictorDep, ServiceDep

router = APIRouter()


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
    authorise(service.settings, credentials, "reloading")
    try:
        return await service.reload()
    except ModelError as exc:
        serving = service.predictor.version if service.predictor else "nothing"
        raise ModelRefusedError(f"model refused, still serving {serving}: {exc}") from exc
