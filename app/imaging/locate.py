"""The digit among the ink: connected components, grouped around the largest one.

A 5's detached bar and a 4's two strokes lie close to the digit's main stroke, so components
near the group join it; a speck, a margin line's remains or a hole punch lie further away, or
are too small beside it, and stay out.
"""

from typing import NamedTuple

import cv2
import numpy as np

# A component joins the group when its box comes this close (a fraction of the group's longer
# side) to the group's box.
NEAR = 0.25
# ... and is at least this fraction of the largest component's area.
MIN_SHARE = 0.03


class Box(NamedTuple):
    """x, y, width, height in pixels."""

    x: int
    y: int
    w: int
    h: int


class Components(NamedTuple):
    """Every connected component of the ink: labels (0 = paper, i + 1 for `boxes[i]`), each
    one's box and area in pixels."""

    labels: np.ndarray
    boxes: list[Box]
    areas: list[int]


class Parts(NamedTuple):
    """The 8-connected components of a mask, as labelled() finds them: labels (0 = paper, i
    for stats[i - 1]) and each component's stats (cv2's CC_STAT columns)."""

    labels: np.ndarray
    stats: np.ndarray


def parts_of(mask: np.ndarray) -> Parts:
    """The components of a bool or uint8 mask."""
    _, labels, stats = labelled(mask.view(np.uint8))
    return Parts(labels, stats[1:])


def labelled(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """cv2.connectedComponentsWithStats of a uint8 mask, 8-connected: the number of labels
    (paper included), the labels and each label's stats. By Grana's block-based algorithm, which
    gives the same labels and stats as OpenCV's default and, with the stats, takes a third of
    its time (bench/imaging_stages.py)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        binary, 8, cv2.CV_32S, cv2.CCL_GRANA
    )
    return count, labels, stats


def components(ink: np.ndarray, parts: Parts | None = None) -> Components:
    """The 8-connected components of the ink; `parts`, when the cleaning found them already."""
    labels, stats = parts if parts is not None else parts_of(ink > 0)
    boxes = [Box(*map(int, row[:4])) for row in stats]
    return Components(labels, boxes, [int(a) for a in stats[:, cv2.CC_STAT_AREA]])


def group(parts: Components) -> list[int]:
    """The indices of the components that make the one digit: the largest, and those near it."""
    if not parts.boxes:
        return []
    largest = max(range(len(parts.areas)), key=parts.areas.__getitem__)
    members = {largest}
    box = parts.boxes[largest]
    grown = True
    while grown:
        grown = False
        reach = NEAR * max(box.w, box.h)
        for i, other in enumerate(parts.boxes):
            if i in members or parts.areas[i] < MIN_SHARE * parts.areas[largest]:
                continue
            if _gap(box, other) <= reach:
                members.add(i)
                box = _union(box, other)
                grown = True
    return sorted(members)


def locate(ink: np.ndarray) -> Box:
    """The box of the digit's group of components, in the ink map's pixels."""
    return digit(ink)[1]


def digit(ink: np.ndarray, found: Parts | None = None) -> tuple[np.ndarray, Box]:
    """The digit's ink alone (other components cleared), cropped to its box, and that box;
    `found`: the ink's components, when the cleaning found them already."""
    parts = components(ink, found)
    members = group(parts)
    if not members:
        return ink[:0, :0], Box(0, 0, 0, 0)
    box = parts.boxes[members[0]]
    for i in members[1:]:
        box = _union(box, parts.boxes[i])
    rows, cols = slice(box.y, box.y + box.h), slice(box.x, box.x + box.w)
    keep = np.zeros(len(parts.boxes) + 1, bool)
    keep[[i + 1 for i in members]] = True
    return ink[rows, cols] * keep[parts.labels[rows, cols]], box


def _gap(a: Box, b: Box) -> int:
    """The distance between two boxes along the axis where they are furthest apart (0 when
    they overlap)."""
    dx = max(b.x - (a.x + a.w), a.x - (b.x + b.w), 0)
    dy = max(b.y - (a.y + a.h), a.y - (b.y + b.h), 0)
    return max(dx, dy)


def _union(a: Box, b: Box) -> Box:
    x, y = min(a.x, b.x), min(a.y, b.y)
    return Box(x, y, max(a.x + a.w, b.x + b.w) - x, max(a.y + a.h, b.y + b.h) - y)
