"""Getting the uploaded bytes out of a request: size limits while reading, multipart, and the
one image of a /predict request (`upload`).

The body is read here rather than by FastAPI's form handling so that the size limit holds
while the bytes arrive (a declared Content-Length over it is refused before reading any),
and so that a digit upload is not spooled to a temporary file and parsed byte by byte:
this parser takes about half python-multipart's time for a one-digit form (bench/service.py's
own_multipart_parser_us and python_multipart_us).
Multipart framing follows RFC 7578 / RFC 2046.
"""

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    BusyError,
    ClientLeftError,
    InvalidContentLengthError,
    MalformedRequestError,
    TooLargeError,
    UnreadBodyTooLargeError,
    UnsupportedMediaError,
)

# A part's headers: a Content-Disposition and a Content-Type take a few hundred bytes.
MAX_PART_HEADER_BYTES = 8192
# Multipart bodies larger than this are split in a worker thread rather than on the event loop.
LARGE_BODY = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Part:
    """One multipart field."""

    name: str
    filename: str | None
    data: bytes


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refused (TooLargeError) as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        # uvicorn refuses a malformed Content-Length itself; other ASGI servers may not.
        if not declared.isdigit():
            raise InvalidContentLengthError(f"invalid Content-Length {declared!r}")
        if int(declared) > limit:
            raise too_large(f"the request body is {int(declared)} bytes", limit, unread=True)
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large("the request body", limit, unread=True)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientLeftError("the client went away before sending the whole body") from None
    return b"".join(chunks)  # a one-chunk body comes back as that chunk, uncopied


def too_large(what: str, limit: int, unread: bool = False) -> TooLargeError:
    """TooLargeError; `unread` for a body not read to its end, whose connection must close."""
    kind = UnreadBodyTooLargeError if unread else TooLargeError
    return kind(f"{what} is larger than the {limit} bytes allowed")


class BodyBudget:
    """Bounds the bytes of request bodies held at once, across all requests: a chunk that would
    take the total past `limit` ends its request with BusyError (503, Retry-After). A request's
    bytes count until it has been answered.

    The connection cap bounds how many bodies arrive at once, the body limits how large each
    may be; without this their product, not the memory, would be the bound.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.held = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        taken = 0

        async def counted() -> Message:
            nonlocal taken
            message = await receive()
            size = len(message.get("body", b""))
            if size:
                if self.held + size > self.limit:
                    raise BusyError(
                        f"the service holds {self.held} bytes of uploads, its limit: try again"
                    )
                self.held += size
                taken += size
            return message

        try:
            await self.app(scope, counted, send)
        finally:
            self.held -= taken


@asynccontextmanager
async def cancelled_on_disconnect(request: Request) -> AsyncIterator[None]:
    """Cancel the work inside when the client goes away (its body already read), and end it
    with ClientLeftError: queued decodes for it are dropped and nothing after them runs."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        yield
    except asyncio.CancelledError:
        if gone and task.uncancel() == 0:
            raise ClientLeftError("the client went away before the answer") from None
        raise
    finally:
        watcher.cancel()


# boundary parameter of the Content-Type: a token, or a quoted string (RFC 2046 bchars
# exclude '"' and '\', so a quoted boundary needs no unescaping).
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))', re.IGNORECASE)
# name=value parameters of a Content-Disposition header, the value a token or quoted string.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))')
_ESCAPE = re.compile(r"\\(.)")
_DISPOSITION = re.compile(rb"^content-disposition:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def parse_multipart(body: bytes, content_type: str, max_parts: int = 1024) -> list[Part]:
    """The fields of a multipart/form-data body, in order; MalformedRequestError if malformed,
    TooLargeError past `max_parts` parts or MAX_PART_HEADER_BYTES of headers in one part."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise malformed("the Content-Type has no boundary parameter")
    boundary = (match[1] or match[2]).encode("latin-1")
    dash_boundary = b"--" + boundary
    delimiter = b"\r\n" + dash_boundary
    # The first boundary may follow a preamble, which is ignored.
    if body.startswith(dash_boundary):
        pos = len(dash_boundary)
    else:
        found = body.find(delimiter)
        if found < 0:
            raise malformed("the body has no multipart boundary")
        pos = found + len(delimiter)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):
            return parts  # the closing delimiter; an epilogue after it is ignored
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise malformed("a boundary is not followed by a line break")
        if len(parts) == max_parts:
            raise TooLargeError(f"the multipart body has more than {max_parts} parts")
        # Searched no further than the cap: parsing cost stays bounded whatever the body.
        headers_end = body.find(b"\r\n\r\n", line_end, line_end + MAX_PART_HEADER_BYTES + 4)
        if headers_end < 0:
            if len(body) - line_end > MAX_PART_HEADER_BYTES + 4:
                raise TooLargeError(
                    f"a multipart part's headers exceed {MAX_PART_HEADER_BYTES} bytes"
                )
            raise malformed("a part's headers are not terminated (truncated body?)")
        data_end = body.find(delimiter, headers_end + 4)
        if data_end < 0:
            raise malformed("a part is not closed by a boundary (truncated body?)")
        headers = body[line_end + 2 : headers_end]
        parts.append(_part(headers, body[headers_end + 4 : data_end]))
        pos = data_end + len(delimiter)


def _part(headers: bytes, data: bytes) -> Part:
    match = _DISPOSITION.search(headers)
    if match is None:
        raise malformed("a part has no Content-Disposition header")
    disposition = match[1].decode("utf-8", "replace")
    kind = disposition.partition(";")[0]
    params = {}
    for param in _PARAM.finditer(disposition, len(kind)):
        value = param[3] if param[2] is None else param[2]
        if "\\" in value and param[2] is not None:
            value = _ESCAPE.sub(r"\1", value)  # a quoted-pair, rare: browsers percent-encode
        params[param[1].lower()] = value
    if kind.strip().lower() != "form-data" or "name" not in params:
        raise malformed("a part's Content-Disposition is not form-data with a name")
    return Part(params["name"], params.get("filename"), data)


def malformed(reason: str) -> MalformedRequestError:
    return MalformedRequestError(f"malformed multipart/form-data body: {reason}")


RAW_TYPES = "image/* or application/octet-stream"


async def upload(request: Request, limit: int) -> bytes:
    """The one image of a /predict request, from multipart field `file` or the raw body."""
    content_type = request.headers.get("content-type", "")
    media_type = media_type_of(content_type)
    if media_type == "multipart/form-data":
        parts = await parsed(await read_body(request, limit), content_type, 16)
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


async def parsed(body: bytes, content_type: str, max_parts: int) -> list[Part]:
    """parse_multipart, in a worker thread for a large body: the event loop stays free."""
    if len(body) <= LARGE_BODY:
        return parse_multipart(body, content_type, max_parts)
    return await anyio.to_thread.run_sync(parse_multipart, body, content_type, max_parts)


def media_type_of(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def field_names(parts: list[Part]) -> str:
    return ", ".join(repr(part.name) for part in parts) or "none"
