"""Mis-segmentations: the pieces a number's segmenter cuts wrongly, as non-digits to refuse.

Reading a number means cutting a line of ink into candidate pieces, scoring every piece and
keeping the best path; a wrong cut must cost more than a right one, so the network must say
"none" to half a digit, a digit with a piece of its neighbour, two or three digits framed as
one, and a stroke alone. These generators make such pieces from MNIST digits laid side by
side and cut vertically, as the segmenter cuts, and frame each with the service's framing
(app.imaging.frame.frame_ink), as the service frames a piece before scoring it.

A piece that would still read as a digit is not made: a vertical bar (a 1), a 1 cut in two,
and the halves that keep a digit's shape (the right half of a 3, 4, 5, 7, 8 or 9 and the left of
a 6, where the digit's weight lies). Every image is uint8 (28, 28), white ink on black.
"""

from collections.abc import Callable

import numpy as np
from PIL import Image

from app.imaging.frame import frame_ink

SIZE = 28

# A piece whose ink spreads less than this across its main axis, itself nearer upright than
# flat, is a bar, which reads as a 1 (upright or slanted as 1s are written).
MIN_SPREAD = 0.3
# Pieces shorter than this (in pixels of a 28-px digit) on their longer side are specks: the
# service drops them, and scaled up to 20 px they would be a blur.
MIN_SIDE = 10
# The cut goes through the middle of a digit's ink, never so near an edge that the piece is
# the digit with a sliver missing.
CUT_RANGE = (0.3, 0.7)
# A half keeps between these shares of the digit's ink: more is the digit, less is a stroke.
HALF_MASS = (0.2, 0.65)
# Halves that keep the digit's shape: its weight lies on that side.
KEEPS_SHAPE = {"right": frozenset({3, 4, 5, 7, 8, 9}), "left": frozenset({6})}
# A neighbour's piece: this share of its width, holding at least MIN_PIECE_MASS of its ink;
# a smaller one leaves the digit with a speck beside it, which is still that digit.
NEIGHBOUR_SHARE = (0.3, 0.5)
MIN_PIECE_MASS = 0.25
# Gaps between the ink of laid-out digits, in pixels of 28-px digits: from touching,
# strokes crossing by a few pixels, to just apart, which a segmenter may merge.
GAP = (-3, 4)
JITTER = 2
HEIGHT = (0.85, 1.15)
# A stroke: the ink between two cuts this share of the digit's width apart.
BAND = (0.12, 0.35)
MIN_STROKE_MASS = 0.08

# A piece's ink from the digits, their labels and the indices of the digits that are not 1s;
# None when the draw made something that could be read as a digit, to draw again.
# Draws for one piece before giving up: real digits need a few; bars never give one.
MAX_DRAWS = 1000
_Piece = Callable[[np.ndarray, np.ndarray, np.ndarray, np.random.Generator], np.ndarray | None]


def halves(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Half a digit: cut at the ink-projection minimum of its middle, or at random there."""
    return _make(digits, labels, count, rng, _half)


def neighbours(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """A digit and the facing part of its neighbour, cut inside the neighbour."""
    return _make(digits, labels, count, rng, _with_neighbour)


def glued(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Two digits side by side, touching or nearly, framed as one piece."""
    return _make(digits, labels, count, rng, _pair)


def strokes(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """A stroke alone: the ink between two close cuts, or one connected part of it."""
    return _make(digits, labels, count, rng, _stroke)


def triples(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Three digits side by side framed as one piece: each squeezed to a third of the box."""
    return _make(digits, labels, count, rng, _triple)


def _make(
    digits: np.ndarray,
    labels: np.ndarray,
    count: int,
    rng: np.random.Generator,
    piece: _Piece,
) -> np.ndarray:
    pool = np.flatnonzero(labels != 1)
    if pool.size == 0:
        raise ValueError("no digits other than 1s to cut pieces from")
    out = np.empty((count, SIZE, SIZE), np.uint8)
    for k in range(count):
        for _ in range(MAX_DRAWS):
            if (ink := piece(digits, labels, pool, rng)) is not None:
                out[k] = frame_ink(ink)
                break
        else:
            raise ValueError(
                f"{MAX_DRAWS} draws made no piece that is not a digit from these digits"
            )
    return out


def _ink(digit: np.ndarray) -> np.ndarray:
    """A digit's ink in [0, 1], cropped to the columns that hold it (every row kept, so
    digits laid side by side stay on one baseline)."""
    ink = digit.astype(np.float32) / 255
    inked = np.flatnonzero(ink.any(axis=0))
    return ink[:, inked[0] : inked[-1] + 1]


def _not_a_bar(ink: np.ndarray) -> bool:
    """Whether a piece is large enough to be scored and not a bar (a 1)."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0 or max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 < MIN_SIDE:
        return False
    ys, xs = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]]
    total = float(ink.sum())
    y, x = float((ys * ink).sum()) / total, float((xs * ink).sum()) / total
    vyy = float((ys * ys * ink).sum()) / total - y * y
    vxx = float((xs * xs * ink).sum()) / total - x * x
    vxy = float((xs * ys * ink).sum()) / total - x * y
    half_trace, det = (vxx + vyy) / 2, vxx * vyy - vxy * vxy
    gap = np.sqrt(max(half_trace * half_trace - det, 0.0))
    spread = np.sqrt(max(half_trace - gap, 0.0) / max(half_trace + gap, 1e-9))
    upright = vyy >= vxx  # the main axis within 45° of vertical
    return bool(spread >= MIN_SPREAD or not upright)


def _cut_column(ink: np.ndarray, rng: np.random.Generator) -> int:
    width = ink.shape[1]
    low, high = (round(share * width) for share in CUT_RANGE)
    if rng.random() < 0.5:
        return int(rng.integers(low, high + 1))
    profile = ink[:, low : high + 1].sum(axis=0)
    return low + int(profile.argmin())


def _half(
    digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    index = int(rng.choice(pool))
    ink = _ink(digits[index])
    side = "left" if rng.random() < 0.5 else "right"
    if int(labels[index]) in KEEPS_SHAPE[side]:
        return None
    cut = _cut_column(ink, rng)
    piece = ink[:, :cut] if side == "left" else ink[:, cut:]
    share = float(piece.sum() / ink.sum())
    if not HALF_MASS[0] <= share <= HALF_MASS[1] or not _not_a_bar(piece):
        return None
    return piece


def _with_neighbour(
    digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    main = _scaled(digits[rng.integers(len(digits))], rng)
    other = _scaled(digits[rng.integers(len(digits))], rng)
    width = other.shape[1]
    take = max(1, round(float(rng.uniform(*NEIGHBOUR_SHARE)) * width))
    if rng.random() < 0.5:  # the neighbour on the right: keep its left part
        line, spans = _lay_out([main, other], rng)
        piece = line[:, : spans[1][0] + take]
        part = other[:, :take]
    else:
        line, spans = _lay_out([other, main], rng)
        piece = line[:, spans[0][1] - take :]
        part = other[:, width - take :]
    if part.sum() < MIN_PIECE_MASS * other.sum():
        return None
    return piece


def _pair(
    digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    return _side_by_side(digits, labels, 2, rng)


def _triple(
    digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    return _side_by_side(digits, labels, 3, rng)


def _side_by_side(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray | None:
    chosen = rng.integers(len(digits), size=count)
    if (labels[chosen] == 1).all():  # 1s crossing each other are one thick 1
        return None
    line, _ = _lay_out([_scaled(digits[i], rng) for i in chosen], rng)
    return line


def _stroke(
    digits: np.ndarray, labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator
) -> np.ndarray | None:
    ink = _ink(digits[rng.choice(pool)])
    width = ink.shape[1]
    band = max(2, round(float(rng.uniform(*BAND)) * width))
    start = int(rng.integers(0, max(1, width - band + 1)))
    piece = ink[:, start : start + band]
    if rng.random() < 0.5:
        piece = piece * _largest_component(piece > 0)
    if piece.sum() < MIN_STROKE_MASS * ink.sum() or not _not_a_bar(piece):
        return None
    return piece


def _scaled(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A digit's ink at a height varied as handwriting varies along a line."""
    ink = _ink(digit)
    factor = float(rng.uniform(*HEIGHT))
    height, width = ink.shape
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR))


def _lay_out(
    inks: list[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Inks placed left to right on one line, with a random gap (negative: strokes cross) and
    vertical jitter each; the line and each ink's column span [start, end) on it."""
    gaps = rng.integers(GAP[0], GAP[1] + 1, size=len(inks) - 1)
    starts = np.concatenate(([0], np.cumsum([ink.shape[1] for ink in inks[:-1]]) + gaps))
    starts -= min(0, int(starts.min()))
    tops = rng.integers(0, 2 * JITTER + 1, size=len(inks))
    width = int(max(start + ink.shape[1] for start, ink in zip(starts, inks, strict=True)))
    height = int(max(top + ink.shape[0] for top, ink in zip(tops, inks, strict=True)))
    line = np.zeros((height, width), np.float32)
    spans = []
    for ink, start, top in zip(inks, starts.tolist(), tops.tolist(), strict=True):
        window = line[top : top + ink.shape[0], start : start + ink.shape[1]]
        np.maximum(window, ink, out=window)
        spans.append((start, start + ink.shape[1]))
    return line, spans


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected part of a boolean mask, grown from seeds by dilation."""
    remaining, best = mask.copy(), np.zeros_like(mask)
    while remaining.any():
        part = np.zeros_like(mask)
        part.flat[int(np.flatnonzero(remaining)[0])] = True
        while True:
            grown = _dilate(part) & remaining
            if np.array_equal(grown, part):
                break
            part = grown
        remaining &= ~part
        if part.sum() > best.sum():
            best = part
    return best


def _dilate(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    height, width = mask.shape
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + height, dx : dx + width]
    return out
