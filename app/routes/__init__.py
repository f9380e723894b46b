"""The API's routes, one module per resource: predict, model, operations, and v2 (the inference
protocol)."""

from typing import Any

import orjson
from fastapi.responses import Response


def json_response(content: Any, status_code: int = 200) -> Response:
    # orjson, straight from the dict: FastAPI's response-model path would validate it again.
    return Response(orjson.dumps(content), status_code, media_type="application/json")
