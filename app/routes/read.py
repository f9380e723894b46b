"""/read: the number written on one line of an image."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.errors import RequestError
from app.imaging.frame import frames_to_inputs
from app.openapi import errors, explain_flag
from app.reading import reading, segment_upload
from app.routes import json_response
from app.routes.predict import PREDICT_BODY, query_flag
from app.schemas import Reading
from app.service import Service, serving
from app.uploads import cancelled_on_disconnect, upload

EXPLAIN = explain_flag(
    "also return the cleaned ink map and the segmentation: the candidate cuts, every piece "
    "scored with its distances and cost, and the chosen path with its score"
)

router = APIRouter()


@router.post(
    "/read",
    response_model=Reading,
    responses=errors(400, 413, 415, 422, 500, 503),
    openapi_extra=PREDICT_BODY | {"parameters": [EXPLAIN]},
    tags=["read"],
)
async def read(request: Request) -> Response:
    """Read a number: the digits written on one line, left to right, each with its box and
    distances; `rejected` (with the reason) when part of the line is not confidently a digit."""
    service: Service = request.app.state.service
    predictor, _, pool = serving(request)
    explain = query_flag(request, "explain")
    try:
        data = await upload(request, service.settings.max_upload_bytes)
        # Decoding, cleaning and cutting the ink and framing every piece cost milliseconds: in
        # a decoder process, so the event loop keeps answering; the network runs here.
        async with cancelled_on_disconnect(request):
            found = await pool.run(segment_upload, data, *predictor.limits(), explain)
    except RequestError as exc:
        service.metrics.read_refused(exc)
        raise
    distances = predictor.run(frames_to_inputs(found.frames, predictor.spec))
    result: dict[str, Any] = reading(found, distances, predictor.answer, predictor.j, explain)
    service.metrics.observe_read(result, len(found.frames))
    return json_response(result)
