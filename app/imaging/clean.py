"""Paper and ink, told apart locally: the grey image of a photo or scan as ink strengths.

A phone photo of paper is lit unevenly, may be ruled or squared, and its ink may be any colour
or a pencil's grey; a scan or a canvas export is already two clean levels. `clean` decides from
the image which it is. A scan smaller than MNIST's frame is read at its own pixels (an
enlargement by repeated pixels taken back to them) interpolated up. A hard shadow's straight
edge across the sheet is found first (an image whose border is one level, a canvas's export,
has none) and the shadow lit like the rest (its depth and its edge's profile measured along the
edge). The ink's polarity is the side of the median reaching further, or, in an image mostly in
a shadow, what stands out from the paper around it (a median filter). Then, when the paper is
one level (its class of Otsu's split is tight), the paper is that level, as for any clean image;
otherwise the paper is estimated around every pixel (a grey-level closing on a reduced image,
which removes the strokes and keeps the light) and divided out. Long thin straight structures
(printed rules, a grid) are then removed unless a stroke thicker than they are crosses them,
where some of them stand clear of the strokes; and so are specks.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from app.errors import NoInkError
from app.imaging.decode import MIN_CONTRAST
from app.imaging.locate import Parts, labelled, parts_of
from model.spec import INPUT

# Longest side of the working image: a digit 15% of a photo's height is still ~60 px there.
WORK_SIDE = 512
# Longest side the paper is estimated on: light varies slowly, so a small image shows it.
BACKGROUND_SIDE = 256
# The closing's side as a fraction of that image: wider than a stroke, narrower than the light.
BACKGROUND_KERNEL = 0.12
# The median filter's window, as a fraction of that image, for telling ink's polarity: twice
# as wide as the boldest stroke.
POLARITY_KERNEL = 0.25
# A shadow's edge: where the paper around steps by this much in grey levels (Canny's lower
# threshold on the Sobel gradient), along a straight line this fraction of the image's
# shorter side, the shadow this much darker than the light; its profile measured this fraction
# of the image's side either side of the line.
EDGE_LOW = 12
EDGE_LENGTH = 0.3
MIN_SHADOW = 0.12
EDGE_REACH = 0.05
# The median filter clearing strokes and printed lines off before edges are looked for (a
# fraction of the reduced image's side), and how many of the longest lines are tried.
EDGE_KERNEL = 0.08
EDGE_CANDIDATES = 4
# How much further from the line than the filter's half window the shadow still is; and the
# least of the light a shadow leaves (ink on paper leaves less).
SHADOW_DEPTH = 3
MAX_SHADOW = 0.35
# Spread of the paper's levels (median absolute deviation, as a fraction of the contrast
# between paper and ink) under which the paper counts as one level.
UNIFORM_PAPER = 0.04
# The most of a photo's pixels ink covers: a darker class larger than this, and not as dark as
# ink, is a shadow.
MAX_INK = 0.2
# Ink weaker than this fraction of the strongest stroke is paper texture or compression noise.
NOISE_FRACTION = 0.2
# Below this side the image is a scan or an icon: no rules to find, no specks to tell apart.
SMALL_SIDE = 96
# Below this side (smaller than MNIST's frame) the image is a low-resolution scan: it is
# interpolated up to UPSCALED_SIDE before ink is told from paper, since at its own resolution
# a pixel partly covered by a stroke is cut away by the noise threshold or kept whole.
LOW_RES_SIDE = INPUT.frame
UPSCALED_SIDE = 64
# A straight run at least this fraction of the image's side is a printed line, not a stroke.
RULE_LENGTH = 0.45
# Components smaller than this fraction of the largest one are specks.
SPECK_FRACTION = 0.02
# Ink area (fraction of the image) under which what is left after cleaning is nothing.
MIN_INK_AREA = 2e-4


@dataclass(frozen=True)
class Ink:
    """Ink strengths at working resolution (float32, 0 = paper, up to 1 = the strongest
    stroke), the uploaded image's pixels per working pixel, the ink's components when the
    cleaning found them (locating the digit or the cuts then labels the ink once less), and
    whether the image was a scan of fewer than LOW_RES_SIDE pixels a side, interpolated up:
    its digit is judged by the model's own threshold for such scans."""

    ink: np.ndarray
    scale: float
    parts: Parts | None = None
    low_resolution: bool = False


def clean(grey: np.ndarray, scale: float = 1.0) -> Ink:
    """The ink in uint8 grey levels `grey` (either polarity), `scale` being the uploaded
    image's pixels per pixel of `grey`; NoInkError for a blank sheet."""
    grey, scale, low_resolution = _at_own_resolution(grey, scale)
    height, width = grey.shape
    factor = max(height, width) / WORK_SIDE
    if factor > 1:
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        scale *= width / size[0]
    small = max(height, width) < SMALL_SIDE and factor <= 1
    if small:
        dark = _dark_of_median(grey)
    else:
        reduced, reduction = _reduced(grey)
        evened = grey if _one_level_border(grey) else _without_shadow_edge(grey, reduced, reduction)
        if evened is not grey:
            grey = evened
            reduced, _ = _reduced(grey)
        dark = _dark_ink(reduced)
    levels = grey.astype(np.float32)
    if not dark:
        levels = 255 - levels
    # Ink is now dark on light paper.
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
    if small:
        parts = parts_of(mask)
    else:
        mask &= ~_rules(mask)
        mask, parts = _without_specks(mask)
    if not mask.any() or (not small and mask.mean() < MIN_INK_AREA):
        raise NoInkError("the image contains no ink: only paper, lines or specks")
    if _strongest(depth * mask) < MIN_CONTRAST:
        raise NoInkError("the image contains no ink: only paper, lines or specks")
    peak = float(contrast[mask].max())
    noise = NOISE_FRACTION * peak
    ink = np.clip((contrast - noise) / (peak - noise), 0, 1) * mask
    # Every pixel of the mask keeps some ink: the ink's components are the mask's.
    return Ink(ink.astype(np.float32), scale, parts, low_resolution)


def _at_own_resolution(grey: np.ndarray, scale: float) -> tuple[np.ndarray, float, bool]:
    """A low-resolution image as it was scanned, interpolated up (bicubic) to UPSCALED_SIDE;
    its scale; and whether it was one. An image enlarged by repeating each pixel
    (nearest-neighbour resampling by a whole factor, as image viewers and pixel editors zoom)
    is first taken back to its own pixels, which it holds exactly: its blocks' square steps
    are no digit's edges."""
    factor = _repeated(grey)
    if factor > 1:
        grey, scale = grey[::factor, ::factor], scale * factor
    height, width = grey.shape
    if max(height, width) >= LOW_RES_SIDE:
        return grey, scale, False
    up = UPSCALED_SIDE / max(height, width)
    size = (max(1, round(width * up)), max(1, round(height * up)))
    upscaled = cv2.resize(grey, size, interpolation=cv2.INTER_CUBIC)
    return upscaled, scale * width / size[0], True


def _repeated(grey: np.ndarray) -> int:
    """The whole factor by which every pixel of a smaller image was repeated down and across to
    make `grey`, or 1: the greatest common divisor of the positions where rows and columns
    change, and of the sides. Every row of an enlargement changes only at multiples of the
    factor: one row and one column first, which rule out almost every photo at once."""
    height, width = grey.shape
    for line in (grey[height // 2], grey[:, width // 2]):
        steps = np.flatnonzero(line[1:] != line[:-1]) + 1
        if len(steps) and np.gcd.reduce(np.concatenate((steps, [len(line)]))) == 1:
            return 1
    factor = 0
    for changes in ((grey[1:] != grey[:-1]).any(1), (grey[:, 1:] != grey[:, :-1]).any(0)):
        steps = np.flatnonzero(changes) + 1
        if not len(steps):  # nothing changes that way: no evidence of an enlargement
            return 1
        factor = int(np.gcd.reduce(np.concatenate((steps, [factor, len(changes) + 1]))))
    return factor


def _strongest(depth: np.ndarray) -> float:
    return float(cv2.blur(depth, (3, 3)).max())


def _reduced(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """The image reduced to BACKGROUND_SIDE, and the working image's pixels per reduced pixel."""
    height, width = grey.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA), width / size[0]


def _paper_around(reduced: np.ndarray) -> np.ndarray:
    """The paper around each pixel of the reduced image, either polarity: a median filter,
    which keeps a shadow's straight edge where it is and removes strokes narrower than half
    its window, whichever their shade."""
    side = max(3, round(POLARITY_KERNEL * max(reduced.shape)) | 1)
    return cv2.medianBlur(reduced, side)


def _dark_ink(reduced: np.ndarray) -> bool:
    """Whether the ink is darker than the paper: the side of the median reaching further, unless
    the image is mostly in a shadow; then what stands out from the paper around it, further on
    one side than the other (white chalk on a board stands out upwards)."""
    if not _mostly_shade(reduced):
        # The median is the paper's: and a scan's or a drawing's strokes may be too bold for
        # the window.
        return _dark_of_median(reduced)
    around = _paper_around(reduced)
    standing = reduced.astype(np.float32) - around.astype(np.float32)
    # The filter rounds a shadow's corners off, as far as half its window from where its own
    # level steps: there it is no measure of the paper.
    side = round(POLARITY_KERNEL * max(around.shape)) | 1
    steps = cv2.morphologyEx(around, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    near = cv2.dilate((steps > MIN_CONTRAST).astype(np.uint8), np.ones((side, side), np.uint8))
    standing[near > 0] = 0
    darker, lighter = _strongest(np.maximum(-standing, 0)), _strongest(np.maximum(standing, 0))
    if max(darker, lighter) < MIN_CONTRAST:  # all of the ink lies along a shadow's edge
        return _dark_of_median(reduced)
    return darker >= lighter


def _mostly_shade(grey: np.ndarray) -> bool:
    """Whether the darker class of Otsu's split is most of the image and not as dark as ink
    beside the lighter one: paper mostly in a shadow, whose median is the shadow's."""
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = grey <= threshold
    if dark.mean() <= 0.5 or dark.all():
        return False
    return bool(np.median(grey[dark]) >= MAX_SHADOW * np.median(grey[~dark]))


def _dark_of_median(grey: np.ndarray) -> bool:
    """Whether the side of the median reaching further is the darker: the paper being most of
    the image, its median is the paper's level. Over 3×3 pixels, not a percentile: a thin
    pencil stroke may be fewer pixels than any percentile's share."""
    levels = grey.astype(np.float32) - _median(_histogram(grey))
    return _strongest(np.maximum(-levels, 0)) >= _strongest(np.maximum(levels, 0))


def _one_level_border(grey: np.ndarray) -> bool:
    """Whether every pixel on the image's border has the same grey level, as a canvas's export
    or a scan's clipped white has: then no shadow's straight edge crosses the image, since its
    line would leave part of the border in the shadow and part in the light."""
    level = grey[0, 0]
    return bool(
        (grey[0] == level).all()
        and (grey[-1] == level).all()
        and (grey[:, 0] == level).all()
        and (grey[:, -1] == level).all()
    )


def _without_shadow_edge(grey: np.ndarray, reduced: np.ndarray, factor: float) -> np.ndarray:
    """The image with the shadow beyond a straight edge across it lit as the rest of the sheet.

    The levels across the edge (_shadow_edge), their medians along it, give the shadow's depth
    and its edge's profile, and the shadow's side is divided by them: strokes, even ones bolder
    than the closing's kernel, then stand on one paper."""
    edge = _shadow_edge(reduced)
    if edge is None:
        return grey
    rho, theta = edge
    height, width = grey.shape
    xs = (np.arange(width, dtype=np.float32) + 0.5) / factor - 0.5
    ys = (np.arange(height, dtype=np.float32) + 0.5) / factor - 0.5
    distance = (xs[None] * np.cos(theta) + ys[:, None] * np.sin(theta) - rho) * factor
    reach = max(4, round(EDGE_REACH * max(height, width)))
    bins = np.clip(np.rint(distance).astype(np.int32), -reach, reach) + reach
    band = (bins > 0) & (bins < 2 * reach)
    profile = _medians(grey[band], bins[band] - 1, 2 * reach - 1)
    if profile is None:
        return grey
    before, after = float(np.median(profile[:4])), float(np.median(profile[-4:]))
    lit, shade = max(before, after), min(before, after)
    if shade > (1 - MIN_SHADOW) * lit:
        return grey
    # The edge's profile from the shadow's level (0) to the light's (1), rising towards the lit
    # side; beyond the reach, all shadow or all light.
    rise = np.clip((profile - shade) / (lit - shade), 0, 1)
    rise = np.concatenate(([float(before > after)], rise, [float(after > before)]))
    if after > before:
        rise = np.maximum.accumulate(rise)
    else:
        rise = np.maximum.accumulate(rise[::-1])[::-1]
    gain = lit / (shade + (lit - shade) * rise)
    return np.clip(grey * gain[bins], 0, 255).astype(np.uint8)


def _shadow_edge(reduced: np.ndarray) -> tuple[float, float] | None:
    """The straight edge of a shadow across the reduced image (its line's rho and theta, as
    cv2.HoughLines gives them), or None: one of the longest straight lines where the levels step
    (thin printed lines and strokes filtered out first) with paper darker by MIN_SHADOW on one
    side than on the other, along all of it."""
    side = max(3, round(EDGE_KERNEL * max(reduced.shape)) | 1)
    # Found at half this resolution, the median filter there costing a quarter, and each line
    # then fitted to its own edge pixels, finer than the transform's one degree.
    half = cv2.resize(reduced, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(cv2.medianBlur(half, max(3, side // 2 | 1)), EDGE_LOW, 2 * EDGE_LOW)
    lines = cv2.HoughLines(edges, 1, np.pi / 180, round(EDGE_LENGTH * min(half.shape)))
    if lines is None:
        return None
    up = reduced.shape[1] / half.shape[1]
    pixels = np.argwhere(edges > 0)[:, ::-1].astype(np.float32)  # x, y of the edges
    height, width = reduced.shape
    offset = side // 2 + 2
    along = np.arange(-(height + width), height + width, dtype=np.float32)
    levels = reduced.astype(np.float32)
    for rho, theta in lines[:EDGE_CANDIDATES, 0].tolist():
        rho, theta = _fitted(pixels, rho, theta, up)
        normal = np.array([np.cos(theta), np.sin(theta)], np.float32)
        points = rho * normal + along[:, None] * np.array([-normal[1], normal[0]], np.float32)
        # The levels facing each other across the line, near it and further on: a shadow
        # darkens the paper by one factor all along (whatever the light's fall-off), a stroke
        # follows a line for a while and has paper beyond it.
        ratios = []
        for shift in (offset, SHADOW_DEPTH * offset):
            ahead = np.rint(points + shift * normal).astype(np.int32)
            behind = np.rint(points - shift * normal).astype(np.int32)
            inside = _inside(ahead, width, height) & _inside(behind, width, height)
            if inside.sum() < EDGE_LENGTH * min(height, width):
                break
            ahead, behind = ahead[inside], behind[inside]
            near = levels[behind[:, 1], behind[:, 0]] + 1
            ratios.append(near / (levels[ahead[:, 1], ahead[:, 0]] + 1))
        else:
            factors = np.concatenate(ratios)
            if np.median(factors) > 1:
                factors = 1 / factors
            low, high = np.percentile(factors, (25, 75))
            if low >= MAX_SHADOW and high < 1 - MIN_SHADOW and high - low < MIN_SHADOW:
                return rho, theta
    return None


def _fitted(pixels: np.ndarray, rho: float, theta: float, up: float) -> tuple[float, float]:
    """The line (rho, theta) of the half-resolution edge pixels `pixels` (x, y) within 2 px of
    the transform's line, fitted by least squares, in the reduced image's pixels (`up` of them
    a half's pixel)."""
    normal = np.array([np.cos(theta), np.sin(theta)], np.float32)
    near = pixels[np.abs(pixels @ normal - rho) <= 2]
    if len(near) >= 2:
        dx, dy, x, y = cv2.fitLine(near, cv2.DIST_L2, 0, 0.01, 0.01).ravel().tolist()
        # The fitted line's normal, on the side of the transform's.
        sign = 1.0 if normal @ np.array([-dy, dx], np.float32) >= 0 else -1.0
        theta = float(np.arctan2(sign * dx, -sign * dy))
        rho = x * np.cos(theta) + y * np.sin(theta)
    # A half's pixel centre x' is at up (x' + 1/2) - 1/2 in the reduced image.
    return up * rho + (up - 1) / 2 * (np.cos(theta) + np.sin(theta)), theta


def _inside(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    return (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)


def _medians(values: np.ndarray, bins: np.ndarray, count: int) -> np.ndarray | None:
    """The median of the values in each bin 0 .. count - 1, or None if one is empty."""
    sizes = np.bincount(bins, minlength=count)
    if (sizes == 0).any():
        return None
    order = np.lexsort((values, bins))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return values[order][starts + sizes // 2].astype(np.float32)


def _uniform_paper(levels: np.ndarray, small: bool) -> float | None:
    """The paper's level when it is one level (a scan, an export, evenly lit paper), else None.

    A small image is a scan or an icon, its digit often most of it: its paper is one level.
    In a larger one, a dark class of more than MAX_INK of the pixels is a shadow, unless it is
    as dark as ink (a bold digit filling a scan)."""
    grey = levels.astype(np.uint8)
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # The levels are whole grey levels: medians from their histogram, not from sorting them.
    counts = _histogram(grey)
    split = int(threshold) + 1
    paper, ink = counts.copy(), counts.copy()
    paper[:split], ink[split:] = 0, 0
    if not paper.any() or not ink.any():
        return _median(counts)
    level = _median(paper)
    if ink.sum() > MAX_INK * levels.size and not small and _median(ink) >= MAX_SHADOW * level:
        return None
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


def _median(counts: np.ndarray, values: np.ndarray | None = None) -> float:
    """np.median of the values (ascending; default the levels 0…255) counted by `counts`."""
    values = np.arange(len(counts), dtype=np.float64) if values is None else values
    ends = np.cumsum(counts)
    rank = 0.5 * (ends[-1] - 1)
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
    if not _profiles_may_hold_a_line(binary, length, length // 8):
        return found.astype(bool)
    # A pen's stroke is thicker than a printed line: what survives an opening wider than the
    # line is a stroke, kept where it crosses one.
    thickness = max(2, round(min(height, width) / 150))
    side = 2 * thickness + 1
    strokes = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    strokes = cv2.dilate(strokes, np.ones((3, 3), np.uint8))
    # Paper with rules has some of them clear of the strokes: looked for there first, which
    # costs a fraction of the whole mask's transform where a large digit is all there is (and
    # a line of digits, whose strokes chain across the mask, holds no line there). The whole
    # mask's then finds the rules' full length, across the strokes.
    thin = np.where(strokes == 0, binary, np.uint8(0))
    if not _may_hold_a_line(thin, length, length // 8) or not len(_segments(thin, length)):
        return found.astype(bool)
    for x1, y1, x2, y2 in _segments(binary, length):
        cv2.line(found, (int(x1), int(y1)), (int(x2), int(y2)), 255, 2 * thickness + 1)
    return (found > 0) & (strokes == 0)


def _segments(binary: np.ndarray, length: int) -> np.ndarray:
    """Straight segments at least `length` long in the mask (cv2.HoughLinesP), as rows of
    x1, y1, x2, y2."""
    lines = cv2.HoughLinesP(
        binary, 1, np.pi / 180, threshold=length // 2, minLineLength=length, maxLineGap=length // 8
    )
    return np.empty((0, 4), np.int32) if lines is None else lines.reshape(-1, 4)


def _may_hold_a_line(binary: np.ndarray, length: int, gap: int) -> bool:
    """Whether HoughLinesP could find a segment `length` long, bridging gaps of up to `gap`
    pixels, in the mask: only if some chain of components, each within gap + 1 pixels of the
    next, spans `length` across or down. Much cheaper than the transform, which most photos
    (a digit on plain paper, smaller than a line) need not pay."""
    reach = gap // 2 + 1  # dilated this much, components gap + 1 apart touch
    # Such a chain's columns (or rows) hold ink with no gap wider than 2 * reach: first that,
    # which rules a digit on plain paper out for a fraction of the cost.
    if not _profiles_may_hold_a_line(binary, length, gap):
        return False
    side = 2 * reach + 1
    grown = cv2.dilate(binary, cv2.getStructuringElement(cv2.MORPH_RECT, (side, side)))
    stats = labelled(grown)[2]
    spans = stats[1:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]] - 2 * reach
    return bool((spans >= length).any())


def _profiles_may_hold_a_line(binary: np.ndarray, length: int, gap: int) -> bool:
    """Whether the mask's column or row profile holds ink across `length` with no run of paper
    wider than 2 * (gap // 2 + 1): what any segment HoughLinesP finds, bridging gaps of up to
    `gap` pixels, needs (_may_hold_a_line's first test)."""
    reach = gap // 2 + 1
    profiles = binary.max(axis=0) > 0, binary.max(axis=1) > 0
    return any(_longest_run(profile, 2 * reach) >= length for profile in profiles)


def _longest_run(occupied: np.ndarray, gap: int) -> int:
    """The longest stretch of `occupied` (bool) from a True to a True with no run of more than
    `gap` False in between."""
    where = np.flatnonzero(occupied)
    if not len(where):
        return 0
    breaks = np.flatnonzero(np.diff(where) > gap + 1)
    starts = np.concatenate(([where[0]], where[breaks + 1]))
    ends = np.concatenate((where[breaks], [where[-1]]))
    return int((ends - starts + 1).max())


def _without_specks(mask: np.ndarray) -> tuple[np.ndarray, Parts]:
    """The mask without components far smaller than its largest one, and its components."""
    count, labels, stats = labelled(mask.view(np.uint8))
    areas = stats[1:, cv2.CC_STAT_AREA]
    kept = areas >= SPECK_FRACTION * areas.max(initial=0)
    if kept.all():  # most photos: the cleaning has left no specks
        return mask, Parts(labels, stats[1:])
    # The components kept, numbered in the order they had.
    new = np.zeros(count, np.int32)
    new[1:][kept] = np.arange(1, int(kept.sum()) + 1, dtype=np.int32)
    labels = np.take(new, labels)
    return labels > 0, Parts(labels, stats[1:][kept])
