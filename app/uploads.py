"""Getting the uploaded bytes out of a request: size limits while reading, multipart, and the
one image of a /predict request (`upload`).

The body is read here rather than by FastAPI's form handling so that the size limit holds
while the bytes arrive (a declared Content-Length over it is refused before reading any),
and so that a digit upload is not spooled to a temporary file and parsed byte by byte:
this parser takes about half python-multipart's time for a one-digit form (bench/service.py's
own_multipart_parser_us and python_multipart_us).
Multipart framing follows RFC 7578 / RFC 2046.
"""

import re
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request

from app.errors import (
    ClientLeftError,
    InvalidContentLengthError,
    MalformedRequestError,
    TooLargeError,
    UnsupportedMediaError,
)


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
            raise too_large(f"the request body is {int(declared)} bytes", limit)
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large("the request body", limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientLeftError("the client went away before sending the whole body") from None
    return b"".join(chunks)  # a one-chunk body comes back as that chunk, uncopied


def too_large(what: str, limit: int) -> TooLargeError:
    return TooLargeError(f"{what} is larger than the {limit} bytes allowed")


# boundary parameter of the Content-Type: a token, or a quoted string (RFC 2046 bchars
# exclude '"' and '\', so a quoted boundary needs no unescaping).
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))', re.IGNORECASE)
# name=value parameters of a Content-Disposition header, the value a token or quoted string.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))')
_ESCAPE = re.compile(r"\\(.)")
_DISPOSITION = re.compile(rb"^content-disposition:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """The fields of a multipart/form-data body, in order; MalformedRequestError if malformed."""
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
        headers_end = body.find(b"\r\n\r\n", line_end)
        if headers_end < 0:
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
