"""Paper and ink, told apart locally: the grey image of a photo or scan as ink strengths.

A phone photo of paper is lit unevenly, may be ruled or squared, and its ink may be any colour
or a pencil's grey; a scan or a canvas export is already two clean levels. `clean` decides
from the image which it is: when the paper is one level (its class of Otsu's split is tight),
the paper is that level, as for any clean image; otherwise the paper is estimated around every
pixel (a grey-level closing on a reduced image, which removes the strokes and keeps the light)
and divided out. Long thin straight structures (printed rules, a grid) are then removed unless
a stroke thicker than they are crosses them, and so are specks.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from app.errors import NoInkError
from app.imaging.decode import MIN_CONTRAST

# Longest side of the working image: a digit 15% of a photo's height is still ~60 px there.
WORK_SIDE = 512
# Longest side the paper is estimated on: light varies slowly, so a small image shows it.
BACKGROUND_SIDE = 256
# The closing's side as a fraction of that image: wider than a stroke, narrower than the light.
BACKGROUND_KERNEL = 0.12
# Spread of the paper's levels (median absolute deviation, as a fraction of the contrast
# between paper and ink) under which the paper counts as one level.
UNIFORM_PAPER = 0.04
# The most of a photo's pixels ink covers: a darker class larger than this is a shadow.
MAX_INK = 0.2
# Ink weaker than this fraction of the strongest stroke is paper texture or compression noise.
NOISE_FRACTION = 0.2
# Below this side the image is a scan or an icon: no rules to find, no specks to tell apart.
SMALL_SIDE = 96
# A straight run at least this fraction of the image's side is a printed line, not a stroke.
RULE_LENGTH = 0.45
# Components smaller than this fraction of the largest one are specks.
SPECK_FRACTION = 0.02
# Ink area (fraction of the image) under which what is left after cleaning is nothing.
MIN_INK_AREA = 2e-4


@dataclass(frozen=True)
class Ink:
    """Ink strengths at working resolution (float32, 0 = paper, up to 1 = the strongest
    stroke) and the uploaded image's pixels per working pixel."""

    ink: np.ndarray
    scale: float


def clean(grey: np.ndarray, scale: float = 1.0) -> Ink:
    """The ink in uint8 grey levels `grey` (either polarity), `scale` being the uploaded
    image's pixels per pixel of `grey`; NoInkError for a blank sheet."""
    height, width = grey.shape
    factor = max(height, width) / WORK_SIDE
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        scale *= width / size[0]
    levels = grey.astype(np.float32)
    dark = _dark_ink(grey)
    if not dark:
        levels = 255 - levels
    # Ink is now dark on light paper.
    small = max(height, width) < SMALL_SIDE and factor <= 1
    paper = _uniform_paper(levels, small)
    background = _background(levels) if paper is None else np.float32(paper)
    # In grey levels, for the test of blankness; relative to the paper's light for the ink.
    depth = np.maximum(background - levels, 0)
    contrast = depth / np.maximum(background, 1) if paper is None else depth / 255
    # Over 3×3 pixels: a stroke is wider than that, a pixel of sensor or JPEG noise is not.
    if _strongest(depth) < MIN_CONTRAST:
        raise NoInkError("the image contains no ink: it looks blank")
    peak = float(contrast.max())
    mask = contrast > NOISE_FRACTION * peak
    if not small:
        mask &= ~_rules(mask)
        mask = _without_specks(mask)
    if not mask.any() or (not small and mask.mean() < MIN_INK_AREA):
        raise NoInkError("the image contains no ink: only paper, lines or specks")
    if _strongest(depth * mask) < MIN_CONTRAST:
        raise NoInkError("the image contains no ink: only paper, lines or specks")
    peak = float(contrast[mask].max())
    noise = NOISE_FRACTION * peak
    ink = np.clip((contrast - noise) / (peak - noise), 0, 1) * mask
    return Ink(ink.astype(np.float32), scale)


def _strongest(depth: np.ndarray) -> float:
    return float(cv2.blur(depth, (3, 3)).max())


def _dark_ink(grey: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: the paper is most of the image, so the ink is
    the side of the median that reaches further (white chalk on a board reaches up)."""
    low, median, high = _percentiles(_histogram(grey), (0.5, 50, 99.5))
    return bool(median - low >= high - median)


def _uniform_paper(levels: np.ndarray, small: bool) -> float | None:
    """The paper's level when it is one level (a scan, an export, evenly lit paper), else None.

    A small image is a scan or an icon, its digit often most of it: its paper is one level.
    In a larger one, a dark class of more than MAX_INK of the pixels is a shadow, not ink."""
    grey = levels.astype(np.uint8)
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # The levels are whole grey levels: medians from their histogram, not from sorting them.
    counts = _histogram(grey)
    split = int(threshold) + 1
    paper, ink = counts.copy(), counts.copy()
    paper[:split], ink[split:] = 0, 0
    if not paper.any() or not ink.any():
        return _median(counts)
    if ink.sum() > MAX_INK * levels.size and not small:
        return None
    level = _median(paper)
    if small:
        return level
    distances = np.abs(np.arange(256) - level)
    order = np.argsort(distances, kind="stable")
    spread = _median(paper[order], distances[order])
    contrast = max(level - _median(ink), 1.0)
    return level if spread <= UNIFORM_PAPER * contrast else None


def _histogram(grey: np.ndarray) -> np.ndarray:
    """How many pixels of uint8 `grey` have each of the 256 levels."""
    return cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel().astype(np.int64)


def _percentiles(counts: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """np.percentile's (linear) percentiles of the levels whose histogram is `counts`."""
    return [_quantile(counts, q / 100) for q in qs]


def _median(counts: np.ndarray, values: np.ndarray | None = None) -> float:
    """np.median of the values (ascending; default the levels 0…255) counted by `counts`."""
    return _quantile(counts, 0.5, values)


def _quantile(counts: np.ndarray, q: float, values: np.ndarray | None = None) -> float:
    values = np.arange(len(counts), dtype=np.float64) if values is None else values
    ends = np.cumsum(counts)
    rank = q * (ends[-1] - 1)
    below, above = int(np.floor(rank)), int(np.ceil(rank))
    low = float(values[np.searchsorted(ends, below, side="right")])
    high = float(values[np.searchsorted(ends, above, side="right")])
    return low + (high - low) * (rank - below)


def _background(levels: np.ndarray) -> np.ndarray:
    """The paper's level around every pixel: a closing (max then min) removes dark strokes
    narrower than its kernel and keeps the light's slow changes and shadows' edges."""
    height, width = levels.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    reduced = cv2.resize(levels, size, interpolation=cv2.INTER_AREA)
    side = max(3, round(BACKGROUND_KERNEL * max(size)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (side, side))
    closed = cv2.morphologyEx(reduced, cv2.MORPH_CLOSE, kernel)
    smooth = cv2.blur(closed, (3, 3))
    return cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR)


def _rules(mask: np.ndarray) -> np.ndarray:
    """Pixels of long thin straight lines (rules, a grid) that no thicker stroke covers."""
    height, width = mask.shape
    binary = mask.astype(np.uint8) * 255
    length = round(RULE_LENGTH * min(height, width))
    found = np.zeros_like(binary)
    if not _may_hold_a_line(binary, length, length // 8):
        return found.astype(bool)
    lines = cv2.HoughLinesP(
        binary, 1, np.pi / 180, threshold=length // 2, minLineLength=length, maxLineGap=length // 8
    )
    if lines is None:
        return found.astype(bool)
    thickness = max(2, round(min(height, width) / 150))
    for x1, y1, x2, y2 in lines.reshape(-1, 4):
        cv2.line(found, (int(x1), int(y1)), (int(x2), int(y2)), 255, 2 * thickness + 1)
    # A pen's stroke is thicker than a printed line: what survives an opening wider than the
    # line is a stroke, kept where it crosses one.
    side = 2 * thickness + 1
    strokes = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    strokes = cv2.dilate(strokes, np.ones((3, 3), np.uint8))
    return (found > 0) & (strokes == 0)


def _may_hold_a_line(binary: np.ndarray, length: int, gap: int) -> bool:
    """Whether HoughLinesP could find a segment `length` long, bridging gaps of up to `gap`
    pixels, in the mask: only if some chain of components, each within gap + 1 pixels of the
    next, spans `length` across or down. Much cheaper than the transform, which most photos
    (a digit on plain paper, smaller than a line) need not pay."""
    reach = gap // 2 + 1  # dilated this much, components gap + 1 apart touch
    side = 2 * reach + 1
    grown = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    _, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    spans = stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]] - 2 * reach
    return bool((spans >= length).any())


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """The mask without components far smaller than its largest one."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, bool)
    keep[1:] = areas >= SPECK_FRACTION * areas.max()
    return keep[labels]
