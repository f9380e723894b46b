"""The image pipeline: an upload's bytes to the float32 input LeNet-5 expects, framework-free.

    decode (decode.py) -> frame as MNIST does (frame.py) -> map onto the model's range

The model learnt MNIST, and uploads go through the same steps as its digits did. A 28×28 image
already in that form skips the framing: its input is bit for bit what offline evaluation feeds
the model (training.mnist.prepare), so the service's accuracy on MNIST is the model's own.

numpy, Pillow and libspng only: this runs on every request and must stay light. Errors are
app.errors kinds, which say what is wrong with an upload and nothing about HTTP.
"""

import logging
from collections.abc import Sequence

import numpy as np

from app.errors import InternalError, RequestError
from app.imaging.decode import DEFAULT_DECODE_MEMORY, decode, describe
from app.imaging.frame import frame_digit, frames_to_inputs, in_mnist_format
from model.spec import INPUT, InputSpec

__all__ = [
    "decode",
    "frame_digit",
    "frames_to_inputs",
    "in_mnist_format",
    "to_frame",
    "to_model_input",
    "to_model_inputs",
]


log = logging.getLogger("lenet5")


def to_model_input(
    data: bytes,
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
) -> np.ndarray:
    """The encoded image `data` as the float32 (1, size, size) model input."""
    inputs, errors = to_model_inputs([data], spec, max_pixels, max_decode_bytes)
    if errors:
        raise errors[0]
    return inputs[0]


def to_frame(
    data: bytes,
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
) -> np.ndarray:
    """The encoded image `data` as the uint8 frame × frame digit the model reads, MNIST's form:
    what `to_model_input` maps onto the model's range."""
    grey = decode(data, max_pixels, max_decode_bytes)
    return grey if in_mnist_format([grey], spec)[0] else frame_digit(grey, spec)


def to_model_inputs(
    uploads: Sequence[bytes],
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
) -> tuple[np.ndarray, dict[int, RequestError]]:
    """The uploads as one float32 (M, 1, size, size) batch of model inputs, in order, and the
    error of each upload that cannot be one, by its index (M uploads have none).

    Each image is decoded on its own; then the ones already in MNIST's format are recognised
    all at once and every frame is mapped onto the model's range in one step. For a digit,
    numpy's cost per call outweighs the arithmetic, so a batch costs far less per image than
    one image alone (bench/service.py).

    Whatever goes wrong with one upload is that upload's error alone: an exception that is not
    a RequestError is a bug, logged with the upload's size and type and answered as
    InternalError for that upload, while the others are read as usual.
    """
    greys: dict[int, np.ndarray] = {}
    errors: dict[int, RequestError] = {}
    for index, data in enumerate(uploads):
        try:
            greys[index] = decode(data, max_pixels, max_decode_bytes)
        except RequestError as exc:
            errors[index] = exc
        except Exception as exc:
            errors[index] = _internal(data, "decoding", exc)
    frames = {}
    for (index, grey), ready in zip(greys.items(), in_mnist_format(list(greys.values()), spec),
                                    strict=True):  # fmt: skip
        try:
            frames[index] = grey if ready else frame_digit(grey, spec)
        except RequestError as exc:
            errors[index] = exc
        except Exception as exc:
            errors[index] = _internal(uploads[index], "framing", exc)
    return frames_to_inputs(list(frames.values()), spec), errors


def _internal(data: bytes, step: str, exc: Exception) -> InternalError:
    kind = describe(data)
    log.error("bug while %s an upload of %d bytes (%s)", step, len(data), kind, exc_info=exc)
    return InternalError(f"internal error while {step} the image ({kind}); it is logged")
