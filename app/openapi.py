"""OpenAPI documentation shared by the routes: error responses and request bodies."""

from typing import Any

from pydantic import BaseModel

from app.schemas import Error


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, each with the Error model."""
    texts = {
        400: "an invalid Content-Length, or the client left before its answer",
        401: "missing or wrong bearer token",
        403: "off: no LENET5_RELOAD_TOKEN is set (for /feedback's records, or LENET5_FEEDBACK=off)",
        404: "no such record, or feedback is off (LENET5_FEEDBACK=off)",
        409: "the model file was refused; the previous model keeps serving",
        413: "the body, the image's pixels or decoding memory, the batch, a part's headers or "
        "the part count is over its limit",
        415: "not an image in a supported format, or an unsupported Content-Type",
        422: "a damaged image, an image without ink, a malformed multipart body, a missing "
        "field or an invalid parameter",
        500: "a bug met while reading the image (logged); other requests are not affected",
        503: "the model is not loaded, every decoder is busy (see Retry-After), or the feedback "
        "store cannot be reached",
        507: "the feedback store's disk is full; nothing already stored is lost",
    }
    return {status: {"model": Error, "description": texts[status]} for status in statuses}


BINARY = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}


def request_body(multipart: dict[str, Any], *raw: str, description: str) -> dict[str, Any]:
    content = {"multipart/form-data": {"schema": multipart}}
    content |= {media_type: {"schema": BINARY} for media_type in raw}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def explain_flag(description: str) -> dict[str, Any]:
    """The OpenAPI parameter of a route's `explain` query flag, saying what it adds."""
    return {
        "name": "explain",
        "in": "query",
        "required": False,
        "schema": {"type": "boolean", "default": False},
        "description": description,
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its definitions written in place: an operation's own
    request body cannot refer to the $defs pydantic puts beside it."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)
