"""Reading a line of handwritten digits, as LeNet-5's paper reads numbers (Sections V and VI):
over-segment the ink (segment.py), frame every candidate piece as MNIST frames a digit, score
them all in one run of the network, and take the best path through the segmentation graph
(graph.py). Framework-free: numpy, OpenCV and the imaging stages.

    segment_upload (in a decoder process) -> Predictor.run on its frames -> reading
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from app.imaging import ink_view, read_digit
from app.imaging.clean import clean
from app.imaging.decode import DEFAULT_DECODE_MEMORY, decode_scaled
from app.imaging.frame import frame_ink, in_mnist_format
from app.reading.graph import GEOMETRY, PIECE_COST, Geometry, best_path, geometry_costs, piece_costs
from app.reading.segment import Piece, candidates
from model.spec import INPUT, InputSpec

__all__ = [
    "Segmentation",
    "frame_pieces",
    "pen_change",
    "reading",
    "segment",
    "segment_upload",
    "stroke_width",
]


@dataclass(frozen=True)
class Segmentation:
    """What the recogniser needs of an image and what the answer shows: every candidate
    piece's frame (uint8 (N, 28, 28)), primitives (first, last) and box (x, y, w, h, in the
    uploaded image's pixels), the number of primitives, the cuts (x, uploaded pixels), the
    ink map's preview when asked for, and whether the image was a low-resolution scan
    (Ink.low_resolution)."""

    frames: np.ndarray
    spans: list[tuple[int, int]]
    boxes: list[list[int]]
    count: int
    cuts: list[int]
    shapes: np.ndarray  # float64 (N, 4): height, width, inner gap in line heights; apart
    ink: dict[str, Any] | None = None
    low_resolution: bool = False


def segment(
    grey: np.ndarray,
    spec: InputSpec = INPUT,
    explain: bool = False,
    cut: bool = True,
    scale: float = 1.0,
) -> Segmentation:
    """The candidate pieces of the decoded image `grey`, its ink cleaned as every route
    cleans it (app.imaging.clean), framed. A frame already in MNIST's format is one digit,
    read as it is, as /predict reads it, and so is a low-resolution scan; without `cut`, each
    connected group of ink is read alone. `scale`: uploaded pixels per pixel of `grey`."""
    if in_mnist_format([grey], spec)[0]:
        box = _scaled(_ink_box(grey), scale)
        preview = ink_view(grey / 255) if explain else None
        return Segmentation(grey[None], [(0, 1)], [box], 1, [], WHOLE_FRAME, preview)
    cleaned = clean(grey, scale)
    ink, scale = cleaned.ink, cleaned.scale
    preview = ink_view(ink) if explain else None
    if cleaned.low_resolution:
        # A scan smaller than MNIST's frame has room for one digit: read as /predict reads it.
        frame, box = read_digit(cleaned, spec)
        return Segmentation(frame[None], [(0, 1)], [box], 1, [], WHOLE_FRAME, preview, True)
    found = candidates(ink, cut=cut, max_run=None if cut else 1, parts=cleaned.parts)
    change = pen_change(ink, found.height)
    frames = frame_pieces(ink, found.pieces, spec, change, len(found.primitives))
    return Segmentation(
        frames,
        [(p.first, p.last) for p in found.pieces],
        [_scaled(p.box, scale) for p in found.pieces],
        len(found.primitives),
        [round(c * scale) for c in found.cuts],
        np.array([_shape(p, found.height) for p in found.pieces], np.float64).reshape(-1, 4),
        preview,
    )


def frame_pieces(
    ink: np.ndarray,
    pieces: list[Piece],
    spec: InputSpec = INPUT,
    change: float = 0.0,
    count: int = 0,
) -> np.ndarray:
    """Every candidate piece's ink, framed as MNIST frames a digit: uint8 (N, frame, frame);
    its strokes first made `change` pixels thicker on each side (thinner if negative), except
    the piece of all `count` primitives: that one is framed as /predict frames the image, so a
    single digit reads the same on both routes."""
    # Thinner strokes are the same whichever piece they fall in: thinned once, for the line.
    thinned = _thinner(ink, change) if change < 0 else ink
    frames = []
    for p in pieces:
        if (p.first, p.last) == (0, count):
            piece = ink[p.mask_slice] * p.mask
        else:
            piece = thinned[p.mask_slice] * p.mask
            if change > 0:
                piece = _thicker(piece, change)
        frames.append(frame_ink(piece, spec))
    return np.stack(frames)


def pen_change(ink: np.ndarray, height: float) -> float:
    """How many pixels a side the line's strokes must grow (or shrink, if negative) for their
    width to lie within MNIST's pens, PEN_WIDTHS of a digit's height: LeNet-5 learnt digits
    written with those, and reads a fine pen's or a marker's digits worse (stroke_width
    measures them). Less than PEN_STEP is no change."""
    width = stroke_width(ink)
    if width == 0:
        return 0.0
    low, high = PEN_WIDTHS
    change = (min(max(width, low * height), high * height) - width) / 2
    return change if abs(change) >= PEN_STEP else 0.0


def stroke_width(ink: np.ndarray) -> float:
    """The mean width of the ink's strokes, in pixels: its area over half its perimeter (the
    total variation of the ink strengths); 0 for no ink."""
    gx = cv2.Sobel(ink, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(ink, cv2.CV_32F, 0, 1, ksize=1)
    perimeter = float(np.sqrt(gx * gx + gy * gy).sum()) / 2  # central differences span 2 px
    return 2 * float(ink.sum()) / perimeter if perimeter else 0.0


def _thicker(ink: np.ndarray, change: float) -> np.ndarray:
    """The ink with every stroke `change` (> 0) pixels thicker on each side, by the distance
    to the stroke: anti-aliased, the strokes' paths kept. Each piece's own: grown on the whole
    line, it would take in a neighbour's ink."""
    pad = int(np.ceil(change)) + 1
    grown = cv2.copyMakeBorder(ink, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    outside = cv2.distanceTransform((grown <= 0.5).view(np.uint8), cv2.DIST_L2, 3)
    return np.maximum(np.clip(change + 0.5 - outside, 0, 1), grown)


def _thinner(ink: np.ndarray, change: float) -> np.ndarray:
    """The ink with every stroke −`change` (> 0) pixels thinner on each side, by the distance to
    the paper."""
    shape = cv2.copyMakeBorder((ink > 0.5).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    inside = cv2.distanceTransform(shape, cv2.DIST_L2, 3)[1:-1, 1:-1]
    return np.minimum(ink, np.clip(inside + (change + 0.5), 0, 1))


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
    answer: Callable[..., dict[str, Any]],
    j: float,
    explain: bool = False,
    piece_cost: float = PIECE_COST,
    weights: Geometry = GEOMETRY,
) -> dict[str, Any]:
    """The answer for a line, from every piece's (N, 10) distances: the best path's digits left
    to right, each answered as `answer` (Predictor.answer) answers one image: a small scan by
    its threshold."""
    costs = piece_costs(distances, j) + geometry_costs(found.shapes, weights)
    path, score = best_path(found.spans, costs, found.count, piece_cost)
    answers = [answer(distances[index], low_resolution=found.low_resolution) for index in path]
    digits = [
        {key: result[key] for key in DIGIT_KEYS} | {"box": found.boxes[index]}
        for index, result in zip(path, answers, strict=True)
    ]
    first = answers[0]
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


# MNIST's pens, in shares of a digit's height: about the middle half of its training digits'
# stroke widths by pen_change's measure (quartiles 0.11 and 0.146, the digits drawn at twice
# MNIST's size as at working resolution); of the bands tried on numbers of training digits
# ((0.10, 0.15), (0.12, 0.13), 0.12 or 0.125 alone), the one read best; and the least change
# of a pen worth making, in pixels a side.
PEN_WIDTHS = (0.11, 0.14)
PEN_STEP = 0.25
# A frame in MNIST's format is one digit filling the line: no geometry cost.
WHOLE_FRAME = np.array([[1.0, 1.0, 0.0, 0.0]])
DIGIT_KEYS = ("digit", "distances", "probabilities", "confidence", "rejected")
DIGIT_NAMES = tuple(str(d) for d in range(10))


def _shape(piece: Piece, height: float) -> tuple[float, float, float, float]:
    """What the graph's geometry terms weigh: the piece's height, width and widest inner gap in
    line heights, and how far its strokes stand apart."""
    _, _, w, h = piece.box
    return h / height, w / height, piece.gap / height, piece.apart


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))


def _scaled(box: tuple[int, int, int, int], scale: float) -> list[int]:
    return [round(v * scale) for v in box]
