"""/model and /model/reload: the network serving, and serving a new file without a restart."""

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import ModelRefusedError, NotAllowedError, UnauthenticatedError
from app.openapi import errors
from app.predictor import ModelError
from app.routes import json_response
from app.schemas import ModelInfo, Reloaded
from app.service import PredictorDep, ServiceDep

bearer = HTTPBearer(auto_error=False, description="the token set in LENET5_RELOAD_TOKEN")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


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
