"""Handwritten numbers made from MNIST digits, for measuring how /read reads a line, and the
mis-segmentations its segmenter makes, for teaching LeNet-5 to refuse them.

`make_number` writes 1–10 digits on one line of a canvas the way people write them: each
digit's height within ±15% of the line's, a slope, a little vertical jitter, thick and thin
strokes, and gaps from −10% of the height (strokes overlapping: the digits touch) to +80%.
Which digits touch is measured on the result (their inks meet), not assumed from the gap.
Tests and benchmarks build numbers from MNIST **test** digits only.

`photograph` puts a number on a photo of paper, under training.photos' sheet conditions:
ruled or squared paper, uneven light and soft shadows, black or blue ink, blur, sensor noise,
JPEG compression.

`missegmentations` cuts numbers made from the digits it is given (MNIST **training** digits,
for training) exactly as app.reading cuts them, and keeps the candidate pieces that are not
one digit: half a digit, a digit with a piece of its neighbour, two digits glued, a stroke
alone, framed as every piece the service scores is framed. `segmented_digits` keeps the
pieces that are one digit, framed with the line's pen evened out as the service frames them,
and labels them: the digits as /read shows them to the network, for training.

Everything is seeded: the same generator state gives the same numbers.
"""

from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from app.errors import MultipleLinesError
from app.imaging.clean import clean
from app.imaging.frame import frame_ink
from app.reading import frame_pieces, pen_change
from app.reading.segment import Piece, candidates
from training import photos

SPACING = (-0.10, 0.80)  # gap between neighbours' inks, in line heights
HEIGHT_SPREAD = 0.15  # each digit's height within ±15% of the line's
JITTER = 0.06  # vertical jitter, in line heights
SLOPE = 0.06  # the line's largest slope (rise over run)
# Pen widths, in digit heights, of the thin (-1), thicker (1) and thick (2) strokes: a fine
# pen below MNIST's thinnest usual stroke, and markers at and beyond its thickest.
PEN_WIDTHS = {-1: 0.06, 1: 0.2, 2: 0.27}


@dataclass(frozen=True)
class Number:
    """A written number: the image (uint8 grey, dark ink on light paper), its digits, each
    digit's ink box (x, y, w, h), which pixels are whose ink, whether any neighbours touch,
    which images its digits are, and the pen they were written with (a key of PEN_WIDTHS, or
    0 for the strokes as drawn)."""

    image: np.ndarray
    text: str
    boxes: list[tuple[int, int, int, int]]
    owner: np.ndarray  # int8 per pixel: index of the digit whose ink is strongest there, or -1
    touching: bool
    sources: tuple[int, ...] = ()  # each digit's index in the images it was drawn from
    pen: int = 0


def make_number(
    images: np.ndarray,
    labels: np.ndarray,
    length: int,
    rng: np.random.Generator,
    height: int | None = None,
    spacing: tuple[float, float] = SPACING,
) -> Number:
    """A number of `length` digits drawn at random from `images` (uint8 (N, 28, 28) MNIST,
    white on black) and their `labels`, written on a canvas; the line `height` in pixels
    (random, 36–100, when None)."""
    line = int(height if height is not None else rng.integers(36, 101))
    picks = rng.integers(0, len(images), length)
    slope = rng.uniform(-SLOPE, SLOPE)
    thickness = rng.choice((-1, 0, 0, 1, 2))  # thin, as drawn, thicker, thick
    inks = [_stroke(_scaled(images[i], line, rng), thickness) for i in picks]
    margin = line // 3 + 4
    gaps = rng.uniform(*spacing, length) * line
    lefts, x = [], float(margin)
    for i, ink in enumerate(inks):
        lefts.append(round(x))
        x += ink.shape[1] + (gaps[i] if i + 1 < length else 0)
    width = round(x) + margin
    drift = abs(slope) * width
    canvas_height = round(line * (1 + HEIGHT_SPREAD + 2 * JITTER) + drift) + 2 * margin
    layers = np.zeros((length, canvas_height, width), np.float32)
    boxes = []
    base = margin + (drift if slope < 0 else 0) + line * (HEIGHT_SPREAD + JITTER)
    for i, ink in enumerate(inks):
        h, w = ink.shape
        centre_x = lefts[i] + w / 2
        bottom = base + line + slope * centre_x + rng.uniform(-JITTER, JITTER) * line
        top = min(max(round(bottom - h), 0), canvas_height - h)
        layers[i, top : top + h, lefts[i] : lefts[i] + w] = ink
        boxes.append((lefts[i], top, w, h))
    combined = layers.max(axis=0)
    owner = np.where(combined > 0, layers.argmax(axis=0), -1).astype(np.int8)
    image = np.rint(255 * (1 - combined)).astype(np.uint8)
    text = "".join(str(int(labels[i])) for i in picks)
    sources = tuple(int(i) for i in picks)
    return Number(image, text, boxes, owner, _touch(layers), sources, int(thickness))


def make_numbers(
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    rng: np.random.Generator,
    lengths: tuple[int, int] = (1, 10),
) -> list[Number]:
    """`count` numbers of `lengths[0]`–`lengths[1]` digits."""
    low, high = lengths
    return [make_number(images, labels, int(rng.integers(low, high + 1)), rng)
            for _ in range(count)]  # fmt: skip


def photograph(number: Number, rng: np.random.Generator) -> bytes:
    """The number written across a photo of paper (training.photos' 960×720 sheet), as JPEG
    bytes: its ink's width 45–90% of the sheet's (its height at most a third of the sheet's),
    under conditions drawn at random: ruled or squared paper, black or blue ink, light falling
    off by up to 45%, a soft shadow, a slight blur, sensor noise, JPEG quality 70–95."""
    sheet = photos.paper(rng)
    lines = rng.choice(["plain", "ruled", "squared"])
    if lines != "plain":
        photos.ruled(sheet, rng, squared=lines == "squared")
    ink = 1 - number.image.astype(np.float32) / 255
    rows, cols = np.nonzero(ink > 0.05)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    height, width = sheet.rgb.shape[:2]
    scale = min(rng.uniform(0.45, 0.9) * width / ink.shape[1], height / 3 / ink.shape[0])
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    big = np.clip(cv2.resize(ink, size, interpolation=cv2.INTER_CUBIC), 0, 1)
    top = int(rng.integers(10, height - size[1] - 10))
    left = int(rng.integers(10, width - size[0] - 10))
    colour = np.asarray(photos.INKS[str(rng.choice(["black", "blue"]))], np.float32)
    alpha = big[..., None] * rng.uniform(0.8, 1.0)
    region = sheet.rgb[top : top + size[1], left : left + size[0]]
    region[:] = region * (1 - alpha) + colour * alpha
    photos.fall_off(sheet, rng, rng.uniform(0, 0.45))
    if rng.random() < 0.3:
        photos.shadow(sheet, rng, rng.uniform(0.2, 0.4), soft=0.2)
    if rng.random() < 0.5:
        photos.blur(sheet, rng, rng.uniform(0.3, 1.0))
    photos.noise(sheet, rng, rng.uniform(2, 6))
    sheet.quality = int(rng.integers(70, 96))
    return photos.encode(sheet)


def _scaled(digit: np.ndarray, line: int, rng: np.random.Generator) -> np.ndarray:
    """The digit's ink (float32, 0 = none) cropped to its box and scaled to its height."""
    rows, cols = np.nonzero(digit)
    crop = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32)
    # MNIST fits a digit's longer side into 20 px: a 1 is 20 high, a wide 2 less.
    height = line * crop.shape[0] / 20 * (1 + rng.uniform(-HEIGHT_SPREAD, HEIGHT_SPREAD))
    factor = max(height, 4) / crop.shape[0]
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    return np.clip(cv2.resize(crop / 255, size, interpolation=cv2.INTER_LINEAR), 0, 1)


def _stroke(ink: np.ndarray, thickness: int) -> np.ndarray:
    """The digit's strokes made thinner (negative) or thicker, to about PEN_WIDTHS[thickness]
    of its height, anti-aliased; 0 leaves it as drawn. The strokes grow or shrink by the same
    amount everywhere, as with another pen along the same path: a thinner one keeps the
    digit's centre line, so no stroke breaks."""
    if thickness == 0:
        return ink
    shape = ink > 0.5
    centre = _centre_line(shape)
    if not centre.any():
        return ink
    drawn = shape.sum() / centre.sum()  # the mean stroke width: area over length
    width = max(1.5, PEN_WIDTHS[thickness] * ink.shape[0])
    change = (width - drawn) / 2  # per side
    if thickness < 0:
        if change >= 0:
            return ink
        change = max(change, -drawn / 4)  # at most halved: a blob drawn so stays a blob
        inside = cv2.distanceTransform(np.pad(shape, 1).view(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
        to_centre = cv2.distanceTransform((~centre).view(np.uint8), cv2.DIST_L2, 5)
        pen = np.maximum(np.where(shape, inside + change + 0.5, 0), width / 2 + 0.5 - to_centre)
        return _cropped(np.clip(pen, 0, 1).astype(np.float32))
    if change <= 0:
        return ink
    pad = round(change) + 1  # the thicker strokes reach past the drawn ink's box
    outside = cv2.distanceTransform(np.pad(~shape, pad, constant_values=True).view(np.uint8),
                                    cv2.DIST_L2, 5)  # fmt: skip
    grown = np.clip(change + 0.5 - outside, 0, 1)
    return _cropped(np.maximum(grown, np.pad(ink, pad)).astype(np.float32))


def _cropped(ink: np.ndarray) -> np.ndarray:
    """The ink cropped to its box: the digit's layout box is its ink's."""
    rows, cols = np.nonzero(ink)
    return ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _centre_line(shape: np.ndarray) -> np.ndarray:
    """The one-pixel centre line of a boolean shape (Zhang and Suen's thinning, 1984): its
    connectivity kept, so a pen traced along it never breaks a stroke."""
    image = np.pad(shape.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            p = image
            # The 8 neighbours clockwise from the one above, as the method numbers them.
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:],
                 p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]  # fmt: skip
            count = sum(a.astype(np.int8) for a in n)
            turns = sum(((a == 0) & (b == 1)).astype(np.int8) for a, b in pairwise([*n, n[0]]))
            if step == 0:
                spare = (n[0] * n[2] * n[4] == 0) & (n[2] * n[4] * n[6] == 0)
            else:
                spare = (n[0] * n[2] * n[6] == 0) & (n[0] * n[4] * n[6] == 0)
            drop = (p[1:-1, 1:-1] == 1) & (count >= 2) & (count <= 6) & (turns == 1) & spare
            if drop.any():
                image[1:-1, 1:-1][drop] = 0
                changed = True
    return image[1:-1, 1:-1].astype(bool)


def _touch(layers: np.ndarray) -> bool:
    """Whether the inks of two neighbours meet (8-connected) on the canvas."""
    kernel = np.ones((3, 3), np.uint8)
    masks = [(layer > 0.25).astype(np.uint8) for layer in layers]
    return any((cv2.dilate(a, kernel) & b).any() for a, b in pairwise(masks))


def missegmentations(
    images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` framed pieces (uint8 (count, 28, 28), MNIST's form) that app.reading's segmenter
    proposes from numbers made of `images` and that are not one digit: pieces holding under
    60% of every digit's ink (half a digit, a stroke alone), or most of one digit and over 20%
    of another (a digit with part of its neighbour, two glued digits). Pieces in between are
    left out: a digit missing a little ink is still that digit."""
    out = np.zeros((count, 28, 28), np.uint8)
    made = 0
    while made < count:
        for cut in _cut_number(images, labels, rng, spacing=(-0.15, 0.3)):
            ranked = np.sort(cut.shares)[::-1]
            second = ranked[1] if len(ranked) > 1 else 0.0
            if ranked[0] < 0.6 or (ranked[0] >= 0.6 and second > 0.2):
                out[made] = frame_ink(cut.ink[cut.piece.mask_slice] * cut.piece.mask)
                made += 1
                if made == count:
                    break
    return out


def segmented_digits(
    images: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits as /read sees them: pieces app.reading's segmenter proposes from numbers
    made of `images` that hold at least 90% of one digit's ink and at most 5% of any other's,
    framed exactly as the service frames every piece (the line's pen evened out towards
    MNIST's, a neighbour's stray ink kept), as uint8 (count, 28, 28), and that digit's label
    for each. Most of what /read misreads is such a piece, cut right and read wrong."""
    out = np.zeros((count, 28, 28), np.uint8)
    out_labels = np.zeros(count, np.int64)
    made = 0
    while made < count:
        for cut in _cut_number(images, labels, rng):
            owner = int(np.argmax(cut.shares))
            others = np.delete(cut.shares, owner)
            if cut.shares[owner] < 0.9 or (others > 0.05).any():
                continue
            out[made] = frame_pieces(cut.ink, [cut.piece], change=cut.change,
                                     count=cut.primitives)[0]  # fmt: skip
            out_labels[made] = labels[cut.sources[owner]]
            made += 1
            if made == count:
                break
    return out, out_labels


@dataclass(frozen=True)
class _Cut:
    """One candidate piece of a written number, with what framing and labelling it need: the
    number's cleaned ink and its sources, the line's pen change, its count of primitives, and
    the share of each digit's ink the piece holds."""

    piece: Piece
    ink: np.ndarray
    change: float
    primitives: int
    shares: np.ndarray
    sources: tuple[int, ...]


def _cut_number(
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    spacing: tuple[float, float] = SPACING,
) -> list[_Cut]:
    """Every candidate piece app.reading's segmenter proposes for one number of 2-4 digits
    made of `images`, cleaned as the service cleans an upload; none when the segmenter takes
    the number for two lines (a rare jitter)."""
    number = make_number(images, labels, int(rng.integers(2, 5)), rng, spacing=spacing)
    ink = clean(number.image).ink
    owner = number.owner
    if ink.shape != owner.shape:  # cleaning works on a reduced image
        owner = cv2.resize(owner, ink.shape[::-1], interpolation=cv2.INTER_NEAREST)
    totals = np.bincount(owner[owner >= 0], minlength=len(number.text))
    try:
        found = candidates(ink)
    except MultipleLinesError:
        return []
    change = pen_change(ink, found.height)
    cuts = []
    for piece in found.pieces:
        shares = np.bincount(owner[piece.mask_slice][piece.mask] + 1,
                             minlength=len(totals) + 1)[1:] / np.maximum(totals, 1)  # fmt: skip
        cuts.append(_Cut(piece, ink, change, len(found.primitives), shares, number.sources))
    return cuts


def edits(read: str, written: str) -> int:
    """Digits misread, missed or added: the Levenshtein distance between the two strings."""
    row = list(range(len(written) + 1))
    for i, a in enumerate(read, 1):
        previous, row[0] = row[0], i
        for k, b in enumerate(written, 1):
            previous, row[k] = row[k], min(row[k] + 1, row[k - 1] + 1, previous + (a != b))
    return row[-1]
