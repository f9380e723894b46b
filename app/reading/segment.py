"""Heuristic over-segmentation of a line of digits (the paper's Section V): the ink's connected
components, specks dropped, cut at candidate points where a component is wide enough to hold
more than one digit; the primitives this leaves, in reading order; and the candidate pieces,
runs of one to a few consecutive primitives, that the recogniser will score.

Everything works on an ink map (float32, 0 = paper, up to 1) in working pixels.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from app.errors import MultipleLinesError, NoInkError
from app.imaging.locate import Parts, parts_of

# A component no larger than this share of the line's height is a speck, not a stroke.
SPECK = 0.15
# A component wider than this many line heights may hold more than one digit: it is cut.
CUT_WIDTH = 0.75
# No primitive narrower than this many line heights is cut off (a 1 is about 0.12).
MIN_PART = 0.1
# Candidate cuts closer than this (line heights) are one cut.
CUT_SPACING = 0.12
# Most cuts kept per line height of a component's width, the lowest projections first: two
# touching digits often meet where the projection is not lowest, so half a height apart.
CUTS_PER_HEIGHT = 4
# Most primitives in one piece, and the widest piece and largest gap of paper inside one
# (line heights): no digit is wider, and strokes of one digit are not so far apart.
MAX_RUN = 6
MAX_PIECE_WIDTH = 1.5
MAX_GAP = 0.3
# Two bands of ink with this much paper between them (line heights), each with this share of
# the ink, are two lines.
LINE_GAP = 0.25
LINE_SHARE = 0.1


@dataclass(frozen=True)
class Piece:
    """A candidate piece: primitives `first` … `last` − 1, its box (x, y, w, h), its ink's
    mask over `mask_slice` (the box) of the ink map, the widest stretch of paper between
    its primitives' columns (0 for one primitive, or primitives that overlap), and how far
    its strokes stand side by side (_apart: 0 for one primitive)."""

    first: int
    last: int
    box: tuple[int, int, int, int]
    mask_slice: tuple[slice, slice]
    mask: np.ndarray
    gap: int = 0
    apart: float = 0.0


@dataclass(frozen=True)
class Candidates:
    """The over-segmentation: primitives (boxes, in reading order), the cuts made inside
    components (x in working pixels), the candidate pieces, and the line's height."""

    primitives: list[tuple[int, int, int, int]]
    cuts: list[int]
    pieces: list[Piece]
    height: float


@dataclass(frozen=True)
class _Primitive:
    label: int
    x0: int  # columns x0 … x1 - 1 of its component
    x1: int
    box: tuple[int, int, int, int]  # x, y, w, h of its ink
    mask: np.ndarray  # its ink over its box


def candidates(
    ink: np.ndarray, cut: bool = True, max_run: int | None = MAX_RUN, parts: Parts | None = None
) -> Candidates:
    """The candidate pieces of the one line of digits in `ink`; without `cut`, each connected
    component is a primitive whole, as a reader that does not search cuts sees it; `parts`:
    the ink's components, when the cleaning found them already. NoInkError when only specks
    are left, MultipleLinesError for a second line."""
    labels, stats = parts if parts is not None else parts_of(ink > 0)
    if not len(stats):
        raise NoInkError("the image contains no ink: it looks blank")
    heights = stats[:, cv2.CC_STAT_HEIGHT]
    tall = heights[heights >= 0.5 * heights.max()]
    height = float(np.median(tall))
    size = np.maximum(stats[:, cv2.CC_STAT_WIDTH], heights)
    kept = [i for i in range(len(stats)) if size[i] > SPECK * height]
    _refuse_second_line(stats[kept], height)
    primitives: list[_Primitive] = []
    cuts: list[int] = []
    for index in kept:
        x, y, w, h, _ = stats[index].tolist()
        label = index + 1
        inside = labels[y : y + h, x : x + w] == label
        at = _cuts(inside, height) if cut and w > CUT_WIDTH * height else []
        cuts.extend(x + c for c in at)
        for a, b in zip([0, *at], [*at, w], strict=True):
            part = inside[:, a:b]
            rows = np.flatnonzero(part.any(axis=1))
            top, bottom = int(rows[0]), int(rows[-1]) + 1
            box = (x + a, y + top, b - a, bottom - top)
            primitives.append(_Primitive(label, x + a, x + b, box, part[top:bottom]))
    primitives.sort(key=lambda p: p.box[0] + p.box[2] / 2)
    pieces = _pieces(primitives, height, max_run or MAX_RUN)
    return Candidates([p.box for p in primitives], sorted(cuts), pieces, height)


def _refuse_second_line(stats: np.ndarray, height: float) -> None:
    """MultipleLinesError when the ink falls into two bands, one above the other."""
    tops = stats[:, cv2.CC_STAT_TOP]
    bottoms = tops + stats[:, cv2.CC_STAT_HEIGHT]
    areas = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    order = np.argsort(tops)
    reach = np.maximum.accumulate(bottoms[order])  # lowest ink so far, top to bottom
    for k in range(1, len(order)):
        gap = tops[order[k]] - reach[k - 1]
        above = areas[order[:k]].sum() / areas.sum()
        if gap > LINE_GAP * height and LINE_SHARE < above < 1 - LINE_SHARE:
            raise MultipleLinesError(
                "the image holds more than one line of digits (ink at rows "
                f"{int(tops[order[0]])}–{int(reach[k - 1])} and from row {int(tops[order[k]])}"
                "): /read reads one line; crop the image to one"
            )


def _cuts(inside: np.ndarray, height: float) -> list[int]:
    """Candidate cut columns inside one component (its mask): minima of the vertical
    projection and the deepest points of the valleys in its upper and lower contours, the
    lowest projection first, at most one per CUT_SPACING and never nearer an edge than
    MIN_PART."""
    h, w = inside.shape
    margin = max(1, round(MIN_PART * height))
    if w <= 2 * margin:
        return []
    profile = inside.sum(axis=0).astype(np.float32)
    smooth = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
    rows = np.arange(h)[:, None]
    top = np.where(inside, rows, h).min(axis=0).astype(np.float32)
    bottom = np.where(inside, rows, -1).max(axis=0).astype(np.float32)
    found = set()
    for signal in (smooth, -top, bottom):
        found.update(_minima(signal, max(1, round(CUT_SPACING * height / 2))).tolist())
    columns = [c for c in found if margin <= c < w - margin]
    columns.sort(key=lambda c: (smooth[c], c))
    spacing = CUT_SPACING * height
    chosen: list[int] = []
    for c in columns:
        if all(abs(c - other) >= spacing for other in chosen):
            chosen.append(c)
    return sorted(chosen[: max(2, round(CUTS_PER_HEIGHT * w / height))])


def _minima(signal: np.ndarray, radius: int) -> np.ndarray:
    """Columns where `signal` is lowest within `radius` on either side (the first of a flat
    run)."""
    # A grey-level erosion of the one-row image, its ends repeated: numpy's sliding windows
    # cost ten times as much on signals this short.
    kernel = np.ones((1, 2 * radius + 1), np.uint8)
    row = np.ascontiguousarray(signal, np.float32).reshape(1, -1)
    lowest = cv2.erode(row, kernel, borderType=cv2.BORDER_REPLICATE).ravel()
    at = signal <= lowest
    at[1:] &= signal[1:] < signal[:-1]
    return np.flatnonzero(at)


def _pieces(primitives: list[_Primitive], height: float, max_run: int) -> list[Piece]:
    """Every run of 1 … max_run consecutive primitives narrow and compact enough to be one digit."""
    pieces = []
    for first in range(len(primitives)):
        for last in range(first + 1, min(first + max_run, len(primitives)) + 1):
            run = primitives[first:last]
            x0 = min(p.box[0] for p in run)
            x1 = max(p.box[0] + p.box[2] for p in run)
            gap = _largest_gap(run)
            if last - first > 1 and (x1 - x0 > MAX_PIECE_WIDTH * height or gap > MAX_GAP * height):
                break
            y0 = min(p.box[1] for p in run)
            y1 = max(p.box[1] + p.box[3] for p in run)
            window = (slice(y0, y1), slice(x0, x1))
            mask = np.zeros((y1 - y0, x1 - x0), bool)
            for p in run:
                top = p.box[1] - y0
                mask[top : top + p.box[3], p.x0 - x0 : p.x1 - x0] |= p.mask
            box = (x0, y0, x1 - x0, y1 - y0)
            pieces.append(Piece(first, last, box, window, mask, gap, _apart(run)))
    return pieces


def _apart(run: list[_Primitive]) -> float:
    """How far the strokes of a run stand side by side, from 0 to 1: at the split of the run
    into a left and a right part with no ink joining them that leaves them sharing the least of
    their columns, the share of the narrower part's columns not shared. The strokes of one
    digit broken apart overlap (a 5's bar over its body, a 4's two strokes); two digits written
    close stand side by side."""
    apart = 0.0
    for at in range(1, len(run)):
        left, right = run[:at], run[at:]
        if {p.label for p in left} & {p.label for p in right}:
            continue  # cut out of one component: its ink joins them
        l0, l1 = min(p.box[0] for p in left), max(p.box[0] + p.box[2] for p in left)
        r0, r1 = min(p.box[0] for p in right), max(p.box[0] + p.box[2] for p in right)
        shared = max(min(l1, r1) - max(l0, r0), 0) / min(l1 - l0, r1 - r0)
        apart = max(apart, 1 - shared)
    return apart


def _largest_gap(run: list[_Primitive]) -> int:
    """The widest stretch of paper between the primitives' column spans."""
    spans = sorted((p.box[0], p.box[0] + p.box[2]) for p in run)
    reach, gap = spans[0][1], 0
    for start, end in spans[1:]:
        gap = max(gap, start - reach)
        reach = max(reach, end)
    return gap
