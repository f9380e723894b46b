"""The image pipeline: an upload's bytes to the float32 input LeNet-5 expects, framework-free.

    decode (decode.py) -> clean: paper vs ink (clean.py) -> locate the digit (locate.py)
    -> frame as MNIST does (frame.py) -> map onto the model's range

The model learnt MNIST, and uploads go through the same steps as its digits did. A 28×28 image
already in that form skips the framing: its input is bit for bit what offline evaluation feeds
the model (training.mnist.prepare), so the service's accuracy on MNIST is the model's own.

numpy, Pillow, libspng and OpenCV only: this runs on every request and must stay light. Errors are
app.errors kinds, which say what is wrong with an upload and nothing about HTTP.
"""

import base64
import io
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import cv2
import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from app.errors import InternalError, NoInkError, RequestError
from app.imaging.clean import Ink, clean
from app.imaging.decode import DEFAULT_DECODE_MEMORY, decode, decode_scaled, describe
from app.imaging.frame import frame_ink, frames_to_inputs, in_mnist_format
from app.imaging.locate import Box, digit, locate
from model.spec import INPUT, InputSpec

__all__ = [
    "Box",
    "Ink",
    "Prepared",
    "clean",
    "decode",
    "frame_ink",
    "frames_to_inputs",
    "in_mnist_format",
    "ink_view",
    "locate",
    "read_digit",
    "to_frame",
    "to_model_input",
    "to_model_inputs",
]


log = logging.getLogger("lenet5")
# One OpenCV thread per process: the service reads uploads in parallel across its decoder
# processes, and on images this small OpenCV's own pool spends more CPU handing work between
# its threads than it saves (bench/imaging_stages.py prints both).
cv2.setNumThreads(1)
# And one BLAS thread: numpy's OpenBLAS would share the framing's matrix products of a
# photo's digit among threads that then spin, doubling a decoder's CPU for nothing.
threadpool_limits(1, user_api="blas")
# Longest side of the cleaned ink map the explain view shows.
VIEW_SIDE = 256


class Prepared(NamedTuple):
    """Uploads made model inputs: float32 (M, 1, size, size) in upload order for the M that
    could be read, each one's box of ink read ([x, y, width, height] in the uploaded image's
    pixels), whether each was read from a low-resolution scan (Ink.low_resolution), their
    cleaned ink maps for the explain view when asked for (ink_view; a frame in MNIST's format
    shows itself), and the error of each upload that could not be read, by its index."""

    inputs: np.ndarray
    errors: dict[int, RequestError]
    boxes: list[list[int]]
    low_resolution: list[bool]
    inks: list[dict[str, Any]] | None = None


def to_model_input(
    data: bytes,
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
) -> np.ndarray:
    """The encoded image `data` as the float32 (1, size, size) model input."""
    prepared = to_model_inputs([data], spec, max_pixels, max_decode_bytes)
    if prepared.errors:
        raise prepared.errors[0]
    return prepared.inputs[0]


def to_frame(
    data: bytes,
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
) -> np.ndarray:
    """The encoded image `data` as the uint8 frame × frame digit the model reads, MNIST's form:
    what `to_model_input` maps onto the model's range."""
    grey, scale = decode_scaled(data, max_pixels, max_decode_bytes)
    if in_mnist_format([grey], spec)[0]:
        return grey
    return read_digit(clean(grey, scale), spec)[0]


def read_digit(ink: Ink, spec: InputSpec = INPUT) -> tuple[np.ndarray, list[int]]:
    """locate and frame: the digit's frame and its box in the uploaded image's pixels."""
    alone, box = digit(ink.ink, ink.parts)
    if not box.w:
        raise NoInkError("the image contains no ink: it looks blank")
    return frame_ink(alone, spec), _scaled_box(box, ink.scale)


def ink_view(ink: np.ndarray) -> dict[str, Any]:
    """The ink map as the explain view shows it: a PNG data URL, white ink on black, at most
    VIEW_SIDE pixels on its longer side."""
    height, width = ink.shape
    factor = max(height, width) / VIEW_SIDE
    levels = np.rint(np.clip(ink, 0, 1) * 255).astype(np.uint8)
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        levels = cv2.resize(levels, size, interpolation=cv2.INTER_AREA)
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, "PNG")
    png = base64.b64encode(buffer.getvalue()).decode()
    return {"png": f"data:image/png;base64,{png}", "width": levels.shape[1],
            "height": levels.shape[0]}  # fmt: skip


def _scaled_box(box: Box, scale: float) -> list[int]:
    x, y = round(box.x * scale), round(box.y * scale)
    return [x, y, round((box.x + box.w) * scale) - x, round((box.y + box.h) * scale) - y]


def _frame_box(frame: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(frame.any(1)), np.flatnonzero(frame.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def to_model_inputs(
    uploads: Sequence[bytes],
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
    explain: bool = False,
) -> Prepared:
    """The uploads as one float32 (M, 1, size, size) batch of model inputs, in order, their
    boxes, and the error of each upload that cannot be one, by its index (M uploads have none);
    with `explain`, each one's cleaned ink map too (ink_view).

    Each image is decoded on its own; then the ones already in MNIST's format are recognised
    all at once and every frame is mapped onto the model's range in one step. For a digit,
    numpy's cost per call outweighs the arithmetic, so a batch costs far less per image than
    one image alone (bench/service.py).

    Whatever goes wrong with one upload is that upload's error alone: an exception that is not
    a RequestError is a bug, logged with the upload's size and type and answered as
    InternalError for that upload, while the others are read as usual.
    """
    greys: dict[int, np.ndarray] = {}
    scales: dict[int, float] = {}
    errors: dict[int, RequestError] = {}
    for index, data in enumerate(uploads):
        try:
            greys[index], scales[index] = decode_scaled(data, max_pixels, max_decode_bytes)
        except RequestError as exc:
            errors[index] = exc
        except Exception as exc:
            errors[index] = _internal(data, "decoding", exc)
    frames, boxes, low_resolution, inks = [], [], [], []
    for (index, grey), ready in zip(greys.items(), in_mnist_format(list(greys.values()), spec),
                                    strict=True):  # fmt: skip
        try:
            if ready:  # the identity path: MNIST's own form is its own framing
                frame, box, view, coarse = grey, _frame_box(grey), grey, False
            else:
                ink = clean(grey, scales[index])
                (frame, box), view, coarse = read_digit(ink, spec), ink.ink, ink.low_resolution
        except RequestError as exc:
            errors[index] = exc
            continue
        except Exception as exc:
            errors[index] = _internal(uploads[index], "reading", exc)
            continue
        frames.append(frame)
        boxes.append(box)
        low_resolution.append(coarse)
        if explain:
            inks.append(ink_view(view if view.dtype != np.uint8 else view / 255))
    inputs = frames_to_inputs(frames, spec)
    return Prepared(inputs, errors, boxes, low_resolution, inks if explain else None)


def _internal(data: bytes, step: str, exc: Exception) -> InternalError:
    kind = describe(data)
    log.error("bug while %s an upload of %d bytes (%s)", step, len(data), kind, exc_info=exc)
    return InternalError(f"internal error while {step} the image ({kind}); it is logged")
