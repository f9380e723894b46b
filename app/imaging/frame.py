"""MNIST's framing of a digit, and the model input made from frames.

MNIST stores white digits (255) on black (0), size-normalised into a 20×20 box and placed by
centre of mass in a 28×28 frame; LeNet-5 reads that frame padded by 2 px to 32×32 and mapped
linearly onto [background, ink] (model.spec.InputSpec). `frame_ink` frames a map of ink
strengths that way; `in_mnist_format` recognises frames that are already so. Training frames its
synthetic non-digits with the same code (training.negatives), so what the service sees and what
the network was taught to refuse are framed alike.
"""

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from model.spec import INPUT, InputSpec


def frame_ink(ink: np.ndarray, spec: InputSpec = INPUT) -> np.ndarray:
    """Ink strengths (float, 0 for none, up to 1) framed as MNIST frames a digit: uint8
    (frame, frame), white on black; the ink cropped to its bounding box, scaled so its longer
    side fills the digit box, and placed with its centre of mass at the frame's centre, kept
    inside the frame. No ink gives a blank frame."""
    # OpenCV's box of the inked pixels: a third of numpy's two reductions and searches, for
    # each of the dozens of pieces /read frames a line.
    x, y, w, h = cv2.boundingRect((ink > 0).view(np.uint8))
    if not w:
        return np.zeros((spec.frame, spec.frame), np.uint8)
    return _place(_fit(ink[y : y + h, x : x + w], spec.digit_box), spec.frame)


def in_mnist_format(greys: list[np.ndarray], spec: InputSpec) -> list[bool]:
    """Which images are in MNIST's own format: frame × frame, ink only inside a digit-box
    square, and centred.

    Everything outside the ink's box must be exactly 0, so a light background never passes.
    Such a frame is its own framing, bit for bit, so the service skips cleaning and framing it.
    MNIST's centring leaves every centre of mass within half a pixel of frame / 2.
    """
    shape = (spec.frame, spec.frame)
    candidates = [i for i, grey in enumerate(greys) if grey.shape == shape]
    answers = [False] * len(greys)
    if not candidates:
        return answers
    count, frame = len(candidates), spec.frame
    # In float32 through matrix products, which beat numpy's small reductions: every sum here
    # is an integer below 2**24, so float32 holds it exactly.
    stack = np.stack([greys[i] for i in candidates]).astype(np.float32)
    ones = np.ones(frame, np.float32)
    rows = (stack.reshape(count * frame, frame) @ ones).reshape(count, frame)
    profiles = np.concatenate((rows, ones @ stack))  # rows of each image, then its columns
    inked = profiles > 0
    first = inked.argmax(1)
    last = frame - 1 - inked[:, ::-1].argmax(1)
    mass = (profiles @ ones).astype(np.float64)
    centre = (profiles @ np.arange(frame, dtype=np.float32)).astype(np.float64) / np.maximum(
        mass, 1
    )
    fits = (mass > 0) & (last - first < spec.digit_box) & (np.abs(centre - frame / 2) <= 1)
    both = fits[:count] & fits[count:]
    for i, ready in zip(candidates, both.tolist(), strict=True):
        answers[i] = ready
    return answers


def _fit(ink: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longer side is `box` pixels, anti-aliased like MNIST's size normalisation:
    Pillow's BILINEAR resampling, whose triangle filter widens by the shrink factor so that
    shrinking averages, done as its two passes (rows, then columns) of the same weights."""
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # As matrix products, not through Pillow: its image objects cost more than the resampling
    # on images this small, and /read frames dozens of pieces a line. Each pass sums in
    # float64 and stores float32, as Pillow's does.
    out = np.asarray(ink, np.float32)
    if size[0] != width:
        out = (out @ _weights(width, size[0]).T).astype(np.float32)
    if size[1] != height:
        out = (_weights(height, size[1]) @ out).astype(np.float32)
    return out


@lru_cache(maxsize=4096)
def _weights(size: int, fitted: int) -> np.ndarray:
    """Pillow's BILINEAR weights (its precompute_coeffs) from `size` pixels to `fitted`:
    float64 (fitted, size), each row summing to 1."""
    scale = size / fitted
    support = max(scale, 1.0)  # the triangle's half-width, in input pixels
    centre = (np.arange(fitted) + 0.5) * scale
    # Pillow's C truncates toward zero, then clamps to the image.
    first = np.maximum((centre - support + 0.5).astype(np.int64), 0)[:, None]
    end = np.minimum((centre + support + 0.5).astype(np.int64), size)[:, None]
    pixel = np.arange(size)[None, :]
    weights = np.maximum(1 - np.abs((pixel - centre[:, None] + 0.5) / support), 0)
    weights[(pixel < first) | (pixel >= end)] = 0
    weights /= weights.sum(axis=1, keepdims=True)
    weights.flags.writeable = False
    return weights


def _place(digit: np.ndarray, frame: int) -> np.ndarray:
    """Put the centre of mass at frame / 2, as MNIST did, keeping all the ink in the frame."""
    height, width = digit.shape
    # In float64: OpenCV reads a float32 array of one or two columns as a list of points.
    moments = cv2.moments(digit.astype(np.float64))
    cy, cx = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
    top = min(max(round(frame / 2 - cy), 0), frame - height)
    left = min(max(round(frame / 2 - cx), 0), frame - width)
    out = np.zeros((frame, frame), np.uint8)
    out[top : top + height, left : left + width] = np.rint(digit * 255)
    return out


def frames_to_inputs(
    frames: Sequence[np.ndarray] | np.ndarray, spec: InputSpec = INPUT
) -> np.ndarray:
    """Pad uint8 MNIST-style frames to the input size and map them onto the model's range:
    float32 (N, 1, size, size)."""
    pad = (spec.size - spec.frame) // 2
    out = np.full((len(frames), 1, spec.size, spec.size), spec.background, np.float32)
    if len(frames):
        inner = slice(pad, pad + spec.frame)
        out[:, 0, inner, inner] = spec.levels.take(np.asarray(frames))
    return out
