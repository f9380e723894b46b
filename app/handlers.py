"""The app's exception handlers: every error answers with the JSON body {"detail": ...}.

A domain error (app.errors) gets the status its kind has in app.errors.STATUS and the headers
it has in HEADERS; FastAPI's own HTTP errors (404, 405) and validation errors keep theirs;
anything else is a 500 that is logged and tells the client nothing more.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.errors import (
    BusyError,
    InternalError,
    RequestError,
    UnauthenticatedError,
    UnreadBodyTooLargeError,
    http_status,
)

log = logging.getLogger("lenet5")


# The headers an error's kind needs beside its status.
HEADERS: dict[type[RequestError], dict[str, str]] = {
    UnauthenticatedError: {"WWW-Authenticate": "Bearer"},
    BusyError: {"Retry-After": str(BusyError.retry_after)},
    UnreadBodyTooLargeError: {"Connection": "close"},
}


async def request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    if isinstance(exc, InternalError):
        log.error("%s on %s %s", exc, request.method, request.url.path)
    headers = next((HEADERS[kind] for kind in type(exc).__mro__ if kind in HEADERS), None)
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
