"""OpenAPI documentation shared by the routes: error responses and request bodies."""

from typing import Any

from app.schemas import Error


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, each with the Error model."""
    texts = {
        400: "an invalid Content-Length, or the client left before sending the whole body",
        401: "missing or wrong bearer token",
        403: "off: no LENET5_RELOAD_TOKEN is set (for /feedback's records, or LENET5_FEEDBACK=off)",
        404: "no such record, or feedback is off (LENET5_FEEDBACK=off)",
        409: "the model file was refused; the previous model keeps serving",
        413: "the body, the image's pixels or the batch is over its limit",
        415: "not an image in a supported format, or an unsupported Content-Type",
        422: "a damaged image, an image without ink, a malformed multipart body, a missing "
        "field or an invalid parameter",
        503: "the model is not loaded, or the feedback store cannot be reached",
        507: "the feedback store's disk is full; nothing already stored is lost",
    }
    return {status: {"model": Error, "description": texts[status]} for status in statuses}


BINARY = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}


def request_body(multipart: dict[str, Any], *raw: str, description: str) -> dict[str, Any]:
    content = {"multipart/form-data": {"schema": multipart}}
    content |= {media_type: {"schema": BINARY} for media_type in raw}
    return {"requestBody": {"required": True, "description": description, "content": content}}
