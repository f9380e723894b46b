"""/feedback: corrections from the people who use the service, kept for retraining.

POST /feedback and GET /feedback/stats are open; reading the records (GET /feedback/export)
and deleting one (DELETE /feedback/{id}) need the bearer token that /model/reload takes.
"""

import base64
import io
from typing import Any

import numpy as np
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from PIL import Image

from app.errors import MalformedRequestError, NotAllowedError, NotFoundError, UnsupportedMediaError
from app.feedback.dataset import FRAME, LABELS
from app.feedback.service import MAX_TAG, OFF, FeedbackService
from app.imaging import to_frame
from app.openapi import BINARY, errors
from app.pool import cheap
from app.routes import BearerDep, authorise, json_response
from app.schemas import FeedbackPage, FeedbackStats, FeedbackStored
from app.service import Service, ServiceDep, serving
from app.uploads import cancelled_on_disconnect, media_type_of, parse_multipart, read_body

router = APIRouter(prefix="/feedback", tags=["feedback"])
FIELDS = ("label", "predicted", "version", "source")
MAX_FIELD_BYTES = 4 * MAX_TAG  # UTF-8 of MAX_TAG characters at most
TEXT = {"type": "string"}
FEEDBACK_FORM = {
    "type": "object",
    "properties": {
        "file": BINARY,
        "label": TEXT | {"enum": list(LABELS), "description": "the digit, or none: not a digit"},
        "predicted": TEXT | {"enum": list(LABELS), "description": "what the service answered"},
        "version": TEXT | {"description": "the model version that answered"},
        "source": TEXT | {"maxLength": MAX_TAG, "description": "a free tag: page, app, group"},
    },
    "required": ["file", "label"],
}
FEEDBACK_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image as the multipart field `file` (same formats and limits as "
        "/predict) and the correct answer in `label`; optionally what the service answered.",
        "content": {"multipart/form-data": {"schema": FEEDBACK_FORM}},
    }
}


def open_feedback(service: Service) -> FeedbackService:
    """The feedback service; 404 when feedback is off."""
    if service.feedback is None:
        raise NotFoundError(OFF)
    return service.feedback


def operator_feedback(service: Service, credentials: Any, what: str) -> FeedbackService:
    """The feedback service for a token route: 403 when feedback or the token is off, 401 for
    a wrong token."""
    if service.feedback is None:
        raise NotAllowedError(OFF)
    authorise(service.settings, credentials, what)
    return service.feedback


@router.post(
    "",
    status_code=201,
    response_model=FeedbackStored,
    responses={
        200: {"model": FeedbackStored, "description": "a repeat: stored already"},
        **errors(400, 404, 413, 415, 422, 503, 507),
    },
    openapi_extra=FEEDBACK_BODY,
)
async def post_feedback(request: Request, service: ServiceDep) -> Response:
    """Store a correction: the image, what it really is, and what the service answered."""
    feedback = open_feedback(service)
    predictor, _, pool = serving(request)
    try:
        image, fields = await form(request, service.settings.max_upload_bytes)
        # Decoded as /predict decodes: a small PNG inline, anything else in the decoder pool.
        if cheap(image):
            frame = to_frame(image, *predictor.limits())
        else:
            async with cancelled_on_disconnect(request):
                frame = await pool.run(to_frame, image, *predictor.limits())
        stored = await feedback.submit(predictor, image, frame, fields)
    except Exception as exc:
        service.metrics.feedback_refused(exc)
        raise
    service.metrics.feedback_stored(stored["label"], stored["duplicate"])
    return json_response(stored, 200 if stored["duplicate"] else 201)


async def form(request: Request, limit: int) -> tuple[bytes, dict[str, str]]:
    """The image (field `file`) and the text fields of a correction's multipart body."""
    content_type = request.headers.get("content-type", "")
    if media_type_of(content_type) != "multipart/form-data":
        raise UnsupportedMediaError(
            "send the correction as multipart/form-data with the fields file and label"
        )
    parts = parse_multipart(await read_body(request, limit), content_type)
    files = [part for part in parts if part.name == "file"]
    if len(files) != 1:
        raise MalformedRequestError("send exactly one image in the multipart field 'file'")
    fields: dict[str, str] = {}
    for part in parts:
        if part.name in FIELDS:
            if part.name in fields or len(part.data) > MAX_FIELD_BYTES:
                raise MalformedRequestError(f"send the field {part.name!r} once, and short")
            fields[part.name] = part.data.decode("utf-8", "replace")
    return files[0].data, fields


@router.get("/stats", response_model=FeedbackStats, responses=errors(404, 503))
async def feedback_stats(service: ServiceDep) -> Response:
    """Corrections by label, and how often each model version agreed with them."""
    return json_response(await open_feedback(service).stats())


@router.get("/export", response_model=FeedbackPage, responses=errors(401, 403, 422, 503))
async def export_feedback(
    service: ServiceDep,
    credentials: BearerDep,
    after: int = Query(0, ge=0, description="records with an id above this"),
    limit: int = Query(100, ge=1, le=1000, description="records in one page"),
) -> Response:
    """The stored corrections in id order, a page at a time, with their 28×28 frames."""
    feedback = operator_feedback(service, credentials, "reading feedback")
    records = [exported(row) for row in await feedback.records(after, limit)]
    next_after = records[-1]["id"] if len(records) == limit else None
    return json_response({"records": records, "next_after": next_after})


@router.delete("/{record_id:int}", status_code=204, responses=errors(401, 403, 404, 422, 503))
async def delete_feedback(
    service: ServiceDep, credentials: BearerDep, record_id: int = Path(ge=1)
) -> Response:
    """Delete one stored correction."""
    feedback = operator_feedback(service, credentials, "deleting feedback")
    if not await feedback.delete(record_id):
        raise NotFoundError(f"no feedback record {record_id}")
    return Response(status_code=204)


def exported(row: dict[str, Any]) -> dict[str, Any]:
    frame = np.frombuffer(row.pop("frame"), np.uint8).reshape(FRAME, FRAME)
    buffer = io.BytesIO()
    Image.fromarray(frame, "L").save(buffer, "PNG")
    row["created"] = row["created"].isoformat()
    row["frame_png"] = base64.b64encode(buffer.getvalue()).decode()
    return row
