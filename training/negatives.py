"""Synthetic non-digits in MNIST's raw format, to teach LeNet-5 to refuse what is not a digit.

LeNet-5's Euclidean RBF outputs give every input a distance to each digit's prototype, but
nothing in MNIST shows the network what a non-digit is. Mixing these images into training
batches with a "none of these" target does. They are made from the training digits and from
drawing alone, so no outside data set is needed.

Every image is uint8 (28, 28), white ink (255) on black (0), and, except for ``inverted``,
framed as MNIST frames a digit: ink scaled so its longer side is 20 px and placed so its
centre of mass is at the frame's centre. Negatives framed any other way would be refused for
their framing rather than their shape; the service frames uploads the MNIST way before
classifying them, so shape is all a real non-digit upload would differ by.

Output is deterministic for a given ``rng`` state on a given machine; ``letter`` depends on
which fonts are installed.
"""

from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.imaging.frame import frame_ink
from training import numbers, pieces

# Things that are not digits at all, shown alone.
SHAPES: tuple[str, ...] = (
    "shuffled", "rotated", "overlap", "scribble", "blob", "letter", "inverted", "noise",
)  # fmt: skip
# What a number's segmenter cuts wrongly: made by cutting laid-out digits (training.pieces),
# and "segmenter", the pieces /read's own segmenter proposes (training.numbers).
MISSEGMENTATIONS: tuple[str, ...] = ("half", "neighbour", "glued", "stroke", "triple", "segmenter")
KINDS: tuple[str, ...] = SHAPES + MISSEGMENTATIONS

SIZE = 28
BOX = 20

# Letters and symbols to render. Left out because, size-normalised, they read as a digit:
#   0: O o D Q   1: I l i j J | ! / \ ( ) [ ]   2: Z z   5: S s $   6: G b   7: T   8: B & ß
#   9: g q   and δ β, which look like a handwritten 6 and 8.
LETTERS = "ACEFHKLMNPRUVWXYacdefhkmnprtuvwxy" + "#%*+<=>?@~^×÷±ΣλμπΩΔΦΨ"

_FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# Text faces only: symbol, math and emoji fonts map letters to shapes that are not letters.
_FONT_FAMILIES = (
    "DejaVuSans",
    "DejaVuSerif",
    "STIXGeneral",
    "Liberation",
    "FreeSans",
    "FreeSerif",
    "FreeMono",
    "NotoSans-",
    "NotoSerif-",
    "NotoSansMono-",
)
_GLYPH_PX = 48

_Kind = Callable[[np.ndarray, np.ndarray, int, np.random.Generator], np.ndarray]
_Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def make_negatives(
    digits: np.ndarray,
    labels: np.ndarray,
    n: int,
    rng: np.random.Generator,
    kinds: Sequence[str] = KINDS,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``n`` non-digit images and, for each, the index in ``KINDS`` of its kind.

    ``digits`` are uint8 (m, 28, 28) MNIST training digits and ``labels`` their classes; the
    kinds that rearrange real digits draw from them. Each image's kind is drawn uniformly
    from ``kinds``. Returns (uint8 (n, 28, 28), int64 (n,)).
    """
    _check_request(digits, labels, n, kinds)
    requested = np.array([KINDS.index(kind) for kind in kinds], dtype=np.int64)
    kind_index = requested[rng.integers(len(requested), size=n)]
    images = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    for index, kind in enumerate(KINDS):
        where = np.flatnonzero(kind_index == index)
        if where.size:
            images[where] = _GENERATORS[kind](digits, labels, where.size, rng)
    return images, kind_index


def normalise_to_mnist(ink: np.ndarray) -> np.ndarray:
    """Frame a uint8 ink image (white on black, any size) the way MNIST frames its digits, with
    the service's own framing (app.imaging.frame.frame_ink): cropped to the ink, scaled so its
    longer side is 20 px, centred by mass in 28 × 28. Blank input gives a blank frame."""
    return frame_ink(ink.astype(np.float32) / 255)


def _check_request(digits: np.ndarray, labels: np.ndarray, n: int, kinds: Sequence[str]) -> None:
    if isinstance(kinds, str):
        raise ValueError(f"kinds must be a sequence of kind names, not the string {kinds!r}")
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown negative kind(s) {unknown}; known kinds are {KINDS}")
    if not kinds:
        raise ValueError("kinds is empty: name at least one of " + ", ".join(KINDS))
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if digits.dtype != np.uint8 or digits.ndim != 3 or digits.shape[1:] != (SIZE, SIZE):
        raise ValueError(f"digits must be uint8 (m, 28, 28), got {digits.dtype} {digits.shape}")
    if labels.shape != digits.shape[:1]:
        raise ValueError(f"labels shape {labels.shape} does not match digits {digits.shape}")


def _digits_except(labels: np.ndarray, excluded: frozenset[int]) -> np.ndarray:
    pool = np.flatnonzero(~np.isin(labels, list(excluded)))
    if pool.size == 0:
        raise ValueError(f"no digits with a label outside {sorted(excluded)} to build from")
    return pool


# --- shuffled: a digit cut into tiles that are shuffled and turned -------------------------

# A 1 is a bar, and pieces of a bar re-laid read as a 1, a 7 or a 4.
_SHUFFLE_EXCLUDED = frozenset({1})


def _shuffled(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    pool = _digits_except(labels, _SHUFFLE_EXCLUDED)
    # The central 24 × 24 holds nearly all of an MNIST digit and divides into 2 × 2 or 3 × 3.
    centres = digits[rng.choice(pool, size=count), 2:26, 2:26]
    grids = rng.choice([2, 3], size=count)
    return np.stack(
        [
            normalise_to_mnist(_shuffle_tiles(centre, int(grid), rng))
            for centre, grid in zip(centres, grids, strict=True)
        ]
    )


def _shuffle_tiles(image: np.ndarray, grid: int, rng: np.random.Generator) -> np.ndarray:
    tile = image.shape[0] // grid
    tiles = image.reshape(grid, tile, grid, tile).swapaxes(1, 2).reshape(grid * grid, tile, tile)
    order = rng.permutation(grid * grid)
    if np.array_equal(order, np.arange(grid * grid)):
        order = np.roll(order, 1)
    moved = tiles[order]
    turns = rng.integers(4, size=grid * grid)
    for k in (1, 2, 3):
        moved[turns == k] = np.rot90(moved[turns == k], k, axes=(1, 2))
    return moved.reshape(grid, grid, tile, tile).swapaxes(1, 2).reshape(image.shape)


# --- rotated: a digit turned or mirrored until it no longer reads as one -------------------


def _any_angle(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = float(rng.uniform(120.0, 240.0))
    turned = Image.fromarray(image).rotate(angle, Image.Resampling.BILINEAR, expand=True)
    return np.asarray(turned)


_ROUND = frozenset({0, 1, 8})  # the same digit, or a bar, after any of these turns
_HALF_TURN = _ROUND | {5, 6, 9}  # 6 and 9 become each other, a 5 becomes an S
# Each transform with the labels that would still read as a digit after it.
_TURNS: tuple[tuple[_Transform, frozenset[int]], ...] = (
    (lambda image, _: np.rot90(image, 1), _ROUND),
    (lambda image, _: np.rot90(image, 3), _ROUND),
    (lambda image, _: np.rot90(image, 2), _HALF_TURN),
    (lambda image, _: image[:, ::-1], _ROUND | {2, 5}),  # a mirrored 5 is a Z; a looped 2, a 6
    (lambda image, _: image[::-1], _HALF_TURN | {3}),  # 3 is its own vertical mirror
    (lambda image, _: image.T, _ROUND),
    (lambda image, _: np.rot90(image, 2).T, _ROUND),
    (_any_angle, _HALF_TURN),
)


def _rotated(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    pools = [_digits_except(labels, excluded) for _, excluded in _TURNS]
    choices = rng.integers(len(_TURNS), size=count)
    out = np.empty((count, SIZE, SIZE), dtype=np.uint8)
    for k, choice in enumerate(choices):
        turn, _ = _TURNS[choice]
        digit = digits[rng.choice(pools[choice])]
        out[k] = normalise_to_mnist(np.ascontiguousarray(turn(digit, rng)))
    return out


# --- overlap: two different digits drawn over each other -----------------------------------

_OVERLAP_EXCLUDED = frozenset({1})  # a 1 over a digit reads as that digit with a stroke: 4, 7, 9
# Laid over each other in full, or stacked, two digits merge into one: a 3 over a 0 is an 8.
# Side by side with their ink overlapping by at most 40 % of the narrower, they read as a pair,
# which is what the service must refuse.
_MAX_OVERLAP = 0.4
_MAX_DROP = 4
_WIDE = 2 * SIZE + 2 * _MAX_DROP


def _overlap(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    pool = _digits_except(labels, _OVERLAP_EXCLUDED)
    first = rng.choice(pool, size=count)
    second = rng.choice(pool, size=count)
    while np.any(same := labels[first] == labels[second]):
        second[same] = rng.choice(pool, size=int(same.sum()))
    left_a, right_a = _ink_columns(digits[first])
    left_b, right_b = _ink_columns(digits[second])
    narrower = np.minimum(right_a - left_a, right_b - left_b) + 1
    overlap = np.rint(rng.uniform(0.0, 1.0, size=count) * (_MAX_OVERLAP * narrower - 2) + 2)
    dxs = np.clip(right_a + 1 - overlap - left_b, -_MAX_DROP, SIZE).astype(int) + _MAX_DROP
    dys = rng.integers(0, 2 * _MAX_DROP + 1, size=count)
    canvas = np.zeros((count, SIZE + 2 * _MAX_DROP, _WIDE), dtype=np.uint8)
    canvas[:, _MAX_DROP : _MAX_DROP + SIZE, _MAX_DROP : _MAX_DROP + SIZE] = digits[first]
    out = np.empty((count, SIZE, SIZE), dtype=np.uint8)
    for k, (dy, dx) in enumerate(zip(dys, dxs, strict=True)):
        window = canvas[k, dy : dy + SIZE, dx : dx + SIZE]
        np.maximum(window, digits[second[k]], out=window)
        out[k] = normalise_to_mnist(canvas[k])
    return out


def _ink_columns(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last column holding ink, per image."""
    inked = np.asarray(images.any(axis=1))
    return inked.argmax(axis=1), SIZE - 1 - inked[:, ::-1].argmax(axis=1)


# --- scribble: random smooth pen strokes ----------------------------------------------------

# Drawn four times larger than the 20 px box, so that downscaling anti-aliases like MNIST.
_CANVAS = 4 * BOX
_SAMPLES_PER_SPAN = 8
_B_SPLINE = np.array([[-1, 3, -3, 1], [3, -6, 3, 0], [-3, 0, 3, 0], [1, 4, 1, 0]]) / 6.0
_STEPS = np.linspace(0.0, 1.0, _SAMPLES_PER_SPAN, endpoint=False)
_SPAN_BASIS = np.stack([_STEPS**3, _STEPS**2, _STEPS, np.ones_like(_STEPS)], axis=1) @ _B_SPLINE


def _scribble(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    return np.stack([normalise_to_mnist(_draw_scribble(rng)) for _ in range(count)])


def _draw_scribble(rng: np.random.Generator) -> np.ndarray:
    pen = float(rng.uniform(1.5, 3.0)) * _CANVAS / BOX
    strokes = _tangle(rng) * (_CANVAS - pen) + pen / 2
    image = Image.new("L", (_CANVAS, _CANVAS))
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        # Points are close enough that plain joints leave no visible notch, and PIL's round
        # joints cost ten times the drawing; square ends of a 2 px pen are invisible at 28 px.
        draw.line(stroke.ravel().tolist(), fill=255, width=round(pen))
    return np.asarray(image)


# An 8, the longest digit, is about 3.5 times its height of stroke. Shorter strokes, or ones
# squeezed into a bar, can trace a 0, 1, 2, 3 or 7; longer, wide ones make a tangle.
_MIN_LENGTH = 4.5
_MIN_ASPECT = 0.4


def _tangle(rng: np.random.Generator) -> np.ndarray:
    """1 to 3 smooth random strokes, (strokes, points, 2) in the unit box, too long for a digit."""
    while True:
        strokes = int(rng.integers(1, 4))
        controls = int(rng.integers(12 - 2 * strokes, 15 - 2 * strokes))
        curves = _b_spline(controls) @ rng.random((strokes, controls, 2))
        low = curves.min(axis=(0, 1))
        extent = curves.max(axis=(0, 1)) - low
        curves = (curves - low) / max(float(extent.max()), 1e-9)
        steps = np.diff(curves, axis=1)
        length = float(np.sqrt(np.einsum("spd,spd->sp", steps, steps)).sum())
        if length >= _MIN_LENGTH and extent.min() >= _MIN_ASPECT * extent.max():
            return curves


@lru_cache(maxsize=16)
def _b_spline(controls: int) -> np.ndarray:
    """The matrix taking a uniform cubic B-spline's control points to points along it."""
    spans = controls - 3
    matrix = np.zeros((spans * _SAMPLES_PER_SPAN, controls))
    for span in range(spans):
        rows = slice(span * _SAMPLES_PER_SPAN, (span + 1) * _SAMPLES_PER_SPAN)
        matrix[rows, span : span + 4] = _SPAN_BASIS
    return matrix


# --- blob: filled shapes, solid, hatched or holed -------------------------------------------

_GRID = np.arange(_CANVAS, dtype=np.float32)
_MIN_ROUNDNESS = 0.5


def _blob(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    return np.stack([normalise_to_mnist(_draw_blob(rng)) for _ in range(count)])


def _draw_blob(rng: np.random.Generator) -> np.ndarray:
    texture = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    while True:
        # A narrow shape, or one that texture cut down to a lone stripe, would be a 1.
        blob = texture(_shapes(rng), rng)
        if _roundness(blob) >= _MIN_ROUNDNESS:
            return blob


def _shapes(rng: np.random.Generator) -> np.ndarray:
    """Filled ellipses and polygons, redrawn until they cover a tenth of the canvas."""
    while True:
        image = Image.new("L", (_CANVAS, _CANVAS))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            centre = rng.uniform(0.3, 0.7, size=2) * _CANVAS
            radius = rng.uniform(0.15, 0.35, size=2) * _CANVAS
            if rng.random() < 0.5:
                draw.ellipse((*(centre - radius), *(centre + radius)), fill=255)
            else:
                draw.polygon(_polygon(centre, radius, rng), fill=255)
        shape = np.asarray(image)
        # A sliver would be scaled up into a bar, and textures would leave nothing of it.
        if np.count_nonzero(shape) >= 0.1 * shape.size:
            return shape


def _roundness(image: np.ndarray) -> float:
    """Minor over major axis of the ink's spread, in any direction: 1 for a disc, 0 for a bar."""
    ink = image.astype(np.float32)
    rows, cols = ink.sum(axis=1), ink.sum(axis=0)
    total = float(rows.sum())
    if total == 0:
        return 0.0
    y, x = rows @ _GRID / total, cols @ _GRID / total
    vyy = rows @ _GRID**2 / total - y * y
    vxx = cols @ _GRID**2 / total - x * x
    vxy = _GRID @ ink @ _GRID / total - x * y
    half_trace, det = (vxx + vyy) / 2, vxx * vyy - vxy * vxy
    gap = np.sqrt(max(half_trace * half_trace - det, 0.0))
    return float(np.sqrt(max(half_trace - gap, 0.0) / max(half_trace + gap, 1e-9)))


def _polygon(
    centre: np.ndarray, radius: np.ndarray, rng: np.random.Generator
) -> list[tuple[float, float]]:
    corners = int(rng.integers(3, 10))
    angles = np.sort(rng.uniform(0.0, 2 * np.pi, size=corners))
    reach = rng.uniform(0.4, 1.0, size=corners)
    xs = centre[0] + radius[0] * reach * np.cos(angles)
    ys = centre[1] + radius[1] * reach * np.sin(angles)
    return [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]


def _solid(shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return shape


def _hatched(shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0.0, np.pi)
    # Three to five stripes across the shape whatever its size; fewer read as bars.
    period = np.sqrt(np.count_nonzero(shape)) / rng.uniform(3.0, 5.0)
    across = _GRID[None, :] * np.cos(angle) + _GRID[:, None] * np.sin(angle)
    # Half-periods counted from well off the canvas, so the count is positive; even ones are gaps.
    half_periods = (across * (2 / period) + 2 * _CANVAS).astype(np.int32)
    return shape * (half_periods & 1).astype(np.uint8)


def _holed(shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Many small holes, all inside the ink, rather than one: a shape with one hole is a 0.
    # Sized to the shape, twelve of them take at most 40 % of it.
    ys, xs = np.nonzero(shape)
    picks = rng.choice(ys.size, size=int(rng.integers(5, 13)))
    radii = rng.uniform(0.05, 0.1, size=picks.size) * np.sqrt(ys.size)
    image = Image.fromarray(shape)
    draw = ImageDraw.Draw(image)
    for y, x, r in zip(ys[picks], xs[picks], radii, strict=True):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return np.asarray(image)


def _mottled(shape: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    grain = rng.uniform(0.3, 1.0, size=(_CANVAS // 8, _CANVAS // 8)).astype(np.float32)
    texture = np.asarray(Image.fromarray(grain).resize((_CANVAS, _CANVAS)))
    return (shape * texture).astype(np.uint8)


_TEXTURES: tuple[_Transform, ...] = (
    _solid, _hatched, _holed, _mottled,
)  # fmt: skip


# --- letter: letters and symbols rendered from installed fonts ------------------------------


def _letter(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    glyphs = _glyphs()
    return np.stack(
        [
            normalise_to_mnist(_vary_glyph(glyphs[int(rng.integers(len(glyphs)))], rng))
            for _ in range(count)
        ]
    )


def _vary_glyph(glyph: Image.Image, rng: np.random.Generator) -> np.ndarray:
    turned = glyph.rotate(float(rng.uniform(-15.0, 15.0)), Image.Resampling.BILINEAR, expand=True)
    # Growing strokes by a pixel at 48 px varies their weight as pens do; two pixels would
    # close the gaps of bold symbols, turning = into a bar and ÷ into +.
    return _thicken(np.asarray(turned), int(rng.integers(2)))


def _thicken(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation by a square of side 2 * radius + 1, done as two 1-D passes."""
    if radius == 0:
        return image
    grown = np.pad(image, radius)
    for shift in range(1, radius + 1):
        base = grown.copy()
        np.maximum(grown[shift:], base[:-shift], out=grown[shift:])
        np.maximum(grown[:-shift], base[shift:], out=grown[:-shift])
        base = grown.copy()
        np.maximum(grown[:, shift:], base[:, :-shift], out=grown[:, shift:])
        np.maximum(grown[:, :-shift], base[:, shift:], out=grown[:, :-shift])
    return grown


@lru_cache(maxsize=1)
def _glyphs() -> tuple[Image.Image, ...]:
    """Every LETTERS character in every usable font, rendered once and cropped to its ink."""
    fonts: list[ImageFont.FreeTypeFont | ImageFont.ImageFont] = [
        ImageFont.truetype(str(path), _GLYPH_PX) for path in _font_paths()
    ]
    if not fonts:
        fonts = [ImageFont.load_default(size=_GLYPH_PX)]
    glyphs = []
    for font in fonts:
        # A character the font lacks renders as its "missing glyph" box, which reads as a 0.
        missing = _render(font, "\U0010fffd")
        for char in LETTERS:
            glyph = _render(font, char)
            if glyph.getbbox() is not None and glyph.tobytes() != missing.tobytes():
                glyphs.append(glyph.crop(glyph.getbbox()))
    return tuple(glyphs)


def _render(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, char: str) -> Image.Image:
    canvas = Image.new("L", (3 * _GLYPH_PX, 3 * _GLYPH_PX))
    ImageDraw.Draw(canvas).text((_GLYPH_PX, _GLYPH_PX), char, fill=255, font=font)
    return canvas


def _font_paths() -> list[Path]:
    """Text fonts from the system and from matplotlib's package data, one per file name."""
    dirs = list(_FONT_DIRS)
    spec = find_spec("matplotlib")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        dirs += [Path(p) / "mpl-data" / "fonts" / "ttf" for p in spec.submodule_search_locations]
    found: dict[str, Path] = {}
    for folder in dirs:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.[ot]tf")):
                if path.name.startswith(_FONT_FAMILIES) and path.name not in found:
                    found[path.name] = path
    return [found[name] for name in sorted(found)]


# --- inverted: a digit as dark ink on a white square ---------------------------------------


def _inverted(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    return 255 - digits[rng.integers(len(digits), size=count)]


# --- noise: speckle, noisy clouds and smoothed random fields --------------------------------


def _noise(
    digits: np.ndarray, labels: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    makers = rng.integers(len(_NOISES), size=count)
    return np.stack([normalise_to_mnist(_NOISES[int(m)](rng)) for m in makers])


def _speckle(rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(10, 21))
    dots = rng.random((side, side)) < rng.uniform(0.1, 0.35)
    dots[side // 2, side // 2] = True  # never blank
    return (dots * rng.integers(128, 256, size=(side, side))).astype(np.uint8)


def _cloud(rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.mgrid[0 : _CANVAS // 2, 0 : _CANVAS // 2] - _CANVAS / 4
    sigma = rng.uniform(5.0, 10.0, size=2)
    envelope = np.exp(-0.5 * ((ys / sigma[0]) ** 2 + (xs / sigma[1]) ** 2))
    # Cut the tails, or their faint specks would set the bounding box and shrink the cloud.
    envelope[envelope < 0.2] = 0.0
    return np.clip(400 * envelope * rng.random(envelope.shape), 0, 255).astype(np.uint8)


def _field(rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(3, 8))
    coarse = rng.standard_normal((side, side)).astype(np.float32)
    smooth = np.asarray(
        Image.fromarray(coarse).resize((_CANVAS // 2, _CANVAS // 2), Image.Resampling.BICUBIC)
    )
    level = np.quantile(smooth, rng.uniform(0.3, 0.7))
    spread = max(float(smooth.max() - level), 1e-6)
    return np.clip(255 * (smooth - level) / spread * 2, 0, 255).astype(np.uint8)


_NOISES: tuple[Callable[[np.random.Generator], np.ndarray], ...] = (_speckle, _cloud, _field)

_GENERATORS: dict[str, _Kind] = {
    "shuffled": _shuffled, "rotated": _rotated, "overlap": _overlap, "scribble": _scribble,
    "blob": _blob, "letter": _letter, "inverted": _inverted, "noise": _noise,
    "half": pieces.halves, "neighbour": pieces.neighbours, "glued": pieces.glued,
    "stroke": pieces.strokes, "triple": pieces.triples, "segmenter": numbers.missegmentations,
}  # fmt: skip
