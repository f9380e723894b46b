"""Reading a line of handwritten digits, as LeNet-5's paper reads numbers (Sections V and VI):
over-segment the ink (segment.py), frame every candidate piece as MNIST frames a digit, score
them all in one run of the network, and take the best path through the segmentation graph
(graph.py). Framework-free: numpy, OpenCV and the imaging stages.

    segment_upload (in a decoder process) -> Predictor.run on its frames -> reading
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.imaging import ink_view
from app.imaging.clean import clean
from app.imaging.decode import DEFAULT_DECODE_MEMORY, decode_scaled
from app.imaging.frame import frame_ink, in_mnist_format
from app.reading.graph import GEOMETRY, PIECE_COST, Geometry, best_path, geometry_costs, piece_costs
from app.reading.segment import Piece, candidates
from model.spec import INPUT, InputSpec

__all__ = ["Segmentation", "frame_pieces", "reading", "segment", "segment_upload"]


@dataclass(frozen=True)
class Segmentation:
    """What the recogniser needs of an image and what the answer shows: every candidate
    piece's frame (uint8 (N, 28, 28)), primitives (first, last) and box (x, y, w, h, in the
    uploaded image's pixels), the number of primitives, the cuts (x, uploaded pixels), and the
    ink map's preview when asked for."""

    frames: np.ndarray
    spans: list[tuple[int, int]]
    boxes: list[list[int]]
    count: int
    cuts: list[int]
    shapes: np.ndarray  # float64 (N, 3): height, width, inner gap in line heights (graph)
    ink: dict[str, Any] | None = None


def segment(
    grey: np.ndarray,
    spec: InputSpec = INPUT,
    explain: bool = False,
    cut: bool = True,
    scale: float = 1.0,
) -> Segmentation:
    """The candidate pieces of the decoded image `grey`, its ink cleaned as every route
    cleans it (app.imaging.clean), framed. A frame already in MNIST's
    format is one digit, read as it is, as /predict reads it; without `cut`, each connected
    group of ink is read alone. `scale`: uploaded pixels per pixel of `grey`."""
    if in_mnist_format([grey], spec)[0]:
        box = _scaled(_ink_box(grey), scale)
        preview = ink_view(grey / 255) if explain else None
        return Segmentation(grey[None], [(0, 1)], [box], 1, [], WHOLE_FRAME, preview)
    cleaned = clean(grey, scale)
    ink, scale = cleaned.ink, cleaned.scale
    preview = ink_view(ink) if explain else None
    found = candidates(ink, cut=cut, max_run=None if cut else 1)
    frames = frame_pieces(ink, found.pieces, spec)
    return Segmentation(
        frames,
        [(p.first, p.last) for p in found.pieces],
        [_scaled(p.box, scale) for p in found.pieces],
        len(found.primitives),
        [round(c * scale) for c in found.cuts],
        np.array([(p.box[3], p.box[2], p.gap) for p in found.pieces], np.float64).reshape(-1, 3)
        / found.height,
        preview,
    )


def frame_pieces(ink: np.ndarray, pieces: list[Piece], spec: InputSpec = INPUT) -> np.ndarray:
    """Every candidate piece's ink, framed as MNIST frames a digit: uint8 (N, frame, frame)."""
    return np.stack([frame_ink(ink[p.mask_slice] * p.mask, spec) for p in pieces])


def segment_upload(
    data: bytes,
    spec: InputSpec = INPUT,
    max_pixels: int | None = None,
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
    explain: bool = False,
    cut: bool = True,
) -> Segmentation:
    """segment() of an upload's bytes, boxes and cuts in the upload's pixels: the decoder
    pool's job for /read."""
    grey, scale = decode_scaled(data, max_pixels, max_decode_bytes)
    return segment(grey, spec, explain, cut, scale)


def reading(
    found: Segmentation,
    distances: np.ndarray,
    answer: Callable[[np.ndarray], dict[str, Any]],
    j: float,
    explain: bool = False,
    piece_cost: float = PIECE_COST,
    weights: Geometry = GEOMETRY,
) -> dict[str, Any]:
    """The answer for a line, from every piece's (N, 10) distances: the best path's digits left
    to right, each answered as `answer` (Predictor.answer) answers one image."""
    costs = piece_costs(distances, j) + geometry_costs(found.shapes, weights)
    path, score = best_path(found.spans, costs, found.count, piece_cost)
    digits = []
    for index in path:
        result = answer(distances[index])
        digits.append({key: result[key] for key in DIGIT_KEYS} | {"box": found.boxes[index]})
    first = answer(distances[path[0]])
    unread = [i for i, digit in enumerate(digits) if digit["rejected"]]
    reason = None
    if unread:
        where = ", ".join(f"{i + 1} at {digits[i]['box']}" for i in unread)
        reason = f"not confidently digits: piece {where} (1 = leftmost)"
    result = {
        "text": "".join(str(d["digit"]) for d in digits),
        "digits": digits,
        "rejected": bool(unread),
        "reason": reason,
        "confidence": float(np.prod([d["confidence"] for d in digits])),
        "version": first["version"],
        "sha256": first["sha256"],
    }
    if explain:
        result["explain"] = {
            "ink": found.ink,
            "segmentation": {
                "cuts": found.cuts,
                "pieces": [
                    {
                        "box": box,
                        "digit": int(row.argmin()),
                        "distances": dict(zip(DIGIT_NAMES, row.tolist(), strict=True)),
                        "cost": float(cost),
                    }
                    for box, row, cost in zip(found.boxes, distances, costs, strict=True)
                ],
                "path": path,
                "score": score,
            },
        }
    return result


# A frame in MNIST's format is one digit filling the line: no geometry cost.
WHOLE_FRAME = np.array([[1.0, 1.0, 0.0]])
DIGIT_KEYS = ("digit", "distances", "probabilities", "confidence", "rejected")
DIGIT_NAMES = tuple(str(d) for d in range(10))


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def _scaled(box: tuple[int, int, int, int], scale: float) -> list[int]:
    return [round(v * scale) for v in box]
