"""The app's exception handlers: every error answers with the JSON body {"detail": ...}.

A domain error (app.errors) gets the status its kind has in app.errors.STATUS; FastAPI's own
HTTP errors (404, 405) and validation errors keep theirs; anything else is a 500 that is logged
and tells the client nothing more.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.errors import RequestError, UnauthenticatedError, http_status

log = logging.getLogger("lenet5")


async def request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthenticatedError) else None
    return JSONResponse({"detail": str(exc)}, http_status(exc), headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": str(exc.detail)}, exc.status_code, exc.headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
    )
    return JSONResponse({"detail": f"invalid request: {problems}"}, 422)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, 500)


HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    RequestError: request_error,
    HTTPException: http_error,
    RequestValidationError: validation_error,
    Exception: server_error,
}
