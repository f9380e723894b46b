"""The API's routes, one module per resource: predict, model, operations, feedback, and v2 (the
inference protocol)."""

import hmac
from typing import Annotated, Any

import orjson
from fastapi import Depends
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import NotAllowedError, UnauthenticatedError
from app.settings import Settings

bearer = HTTPBearer(auto_error=False, description="the token set in LENET5_RELOAD_TOKEN")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def authorise(
    settings: Settings, credentials: HTTPAuthorizationCredentials | None, what: str
) -> None:
    """The operator's bearer token (LENET5_RELOAD_TOKEN): `what` is off without one (403), and
    refused with a wrong one (401)."""
    token = settings.reload_token
    if token is None:
        raise NotAllowedError(f"{what} over HTTP is off: set LENET5_RELOAD_TOKEN to allow it")
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise UnauthenticatedError("a valid bearer token is needed")


def json_response(content: Any, status_code: int = 200) -> Response:
    # orjson, straight from the dict: FastAPI's response-model path would validate it again.
    return Response(orjson.dumps(content), status_code, media_type="application/json")
