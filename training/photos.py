"""Photographed digits, rendered: MNIST digits drawn large on a sheet of paper as a phone sees it.

Seeded and self-contained (numpy, Pillow, OpenCV, nothing downloaded). Every condition of
CONDITIONS renders one digit (28×28, white on black, as MNIST stores it) into encoded image
bytes; `non_digit_photos` renders sheets with no digit on them (blank, a letter, a sign, a
scribble, a letter shaped like a digit) under the same conditions, for the service to refuse.
Give it MNIST **test** digits when measuring, so nothing trained on is tested on.
"""

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Photo size (width, height) the digits are drawn at: a phone's photo reduced, 0.7 MP. Read
# when a sheet is made, so a report may draw them at another size (bench/photos.py --size).
SIZE = (960, 720)
INKS = {
    "black": (35, 35, 45),
    "blue": (40, 60, 170),
    "red": (190, 35, 40),
    "pencil": (110, 110, 115),
}
EXIF_ORIENTATION = 0x0112


@dataclass
class Sheet:
    """A photo being rendered: RGB float32 levels, and how it is to be encoded."""

    rgb: np.ndarray
    quality: int = 92
    exif_rotated: bool = False
    png: bool = False


def size_of(text: str) -> tuple[int, int]:
    """A photo size written WIDTHxHEIGHT, as the reports take it."""
    width, _, height = text.partition("x")
    return int(width), int(height)


def paper(rng: np.random.Generator, size: tuple[int, int] | None = None) -> Sheet:
    width, height = size or SIZE
    tint = rng.uniform(225, 248) + rng.uniform(-6, 6, 3)
    return Sheet(np.broadcast_to(tint, (height, width, 3)).astype(np.float32).copy())


def draw_ink(
    sheet: Sheet,
    ink: np.ndarray,
    rng: np.random.Generator,
    colour: tuple[int, int, int] = INKS["black"],
    height_fraction: tuple[float, float] = (0.15, 0.6),
) -> None:
    """Lay the ink (float 0..1, any size) on the sheet, its height a fraction of the photo's."""
    height, width = sheet.rgb.shape[:2]
    rows, cols = np.nonzero(ink > 0.05)
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    side = int(rng.uniform(*height_fraction) * height)
    scale = side / crop.shape[0]
    size = (max(1, round(crop.shape[1] * scale)), side)
    if size[0] >= width - 20:
        size = (width - 20, side)
    big = cv2.resize(crop.astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    big = np.clip(cv2.GaussianBlur(big, (0, 0), max(0.5, side / 200)), 0, 1)
    top = int(rng.integers(10, max(11, height - side - 10)))
    left = int(rng.integers(10, max(11, width - size[0] - 10)))
    region = sheet.rgb[top : top + side, left : left + size[0]]
    alpha = big[..., None] * rng.uniform(0.8, 1.0)
    region[:] = region * (1 - alpha) + np.asarray(colour, np.float32) * alpha


def ruled(sheet: Sheet, rng: np.random.Generator, squared: bool = False) -> None:
    height, width = sheet.rgb.shape[:2]
    spacing = (
        int(rng.uniform(0.025, 0.07) * height) if squared else int(rng.uniform(0.04, 0.09) * height)
    )
    colour = np.array([rng.uniform(120, 200), rng.uniform(150, 210), rng.uniform(190, 235)])
    if rng.random() < 0.3:
        colour = np.full(3, rng.uniform(130, 190))  # grey rules
    thick = int(rng.integers(1, 3))
    lines = np.zeros((height, width), np.float32)
    offset = int(rng.integers(0, spacing))
    for y in range(offset, height, spacing):
        cv2.line(lines, (0, y), (width, y), 1.0, thick)
    if squared:
        for x in range(offset, width, spacing):
            cv2.line(lines, (x, 0), (x, height), 1.0, thick)
    else:
        margin = int(rng.uniform(0.08, 0.15) * width)
        cv2.line(lines, (margin, 0), (margin, height), 1.0, thick)
    alpha = lines[..., None] * rng.uniform(0.5, 0.9)
    sheet.rgb[:] = sheet.rgb * (1 - alpha) + colour * alpha


def fall_off(sheet: Sheet, rng: np.random.Generator, depth: float) -> None:
    """Light falling off by `depth` across the sheet, along a random direction."""
    height, width = sheet.rgb.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (x - width / 2) * np.cos(angle) + (y - height / 2) * np.sin(angle)
    t = (t - t.min()) / (t.max() - t.min())
    sheet.rgb *= (1 - depth * t)[..., None]


def shadow(sheet: Sheet, rng: np.random.Generator, depth: float = 0.45, soft: float = 0.01) -> None:
    """A shadow across the sheet (a hand's, a phone's): darker past a line, its edge `soft`."""
    height, width = sheet.rgb.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    d = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    edge = 1 / (1 + np.exp(-d / max(1.0, soft * height)))
    sheet.rgb *= (1 - depth * edge)[..., None]


def tilt(sheet: Sheet, rng: np.random.Generator, degrees: float = 10) -> None:
    height, width = sheet.rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-degrees, degrees), 1.05)
    sheet.rgb = cv2.warpAffine(sheet.rgb, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def perspective(sheet: Sheet, rng: np.random.Generator, amount: float = 0.06) -> None:
    height, width = sheet.rgb.shape[:2]
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    moved = (corners + rng.uniform(-amount, amount, (4, 2)) * [width, height]).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(corners, moved)
    sheet.rgb = cv2.warpPerspective(
        sheet.rgb, matrix, (width, height), borderMode=cv2.BORDER_REFLECT
    )


def blur(sheet: Sheet, rng: np.random.Generator, sigma: float = 1.5) -> None:
    scale = sheet.rgb.shape[0] / 480
    sheet.rgb = cv2.GaussianBlur(sheet.rgb, (0, 0), sigma * scale)


def noise(sheet: Sheet, rng: np.random.Generator, sigma: float = 8) -> None:
    sheet.rgb += rng.normal(0, sigma, sheet.rgb.shape).astype(np.float32)


def encode(sheet: Sheet) -> bytes:
    image = Image.fromarray(np.clip(sheet.rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    if sheet.png:
        image.convert("L").save(buffer, "PNG")
        return buffer.getvalue()
    if sheet.exif_rotated:
        # Stored turned a quarter to the left, as a phone held sideways stores it; the tag
        # says to turn it back to the right (6) to show it.
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6
        image.save(buffer, "JPEG", quality=sheet.quality, exif=exif.tobytes())
    else:
        image.save(buffer, "JPEG", quality=sheet.quality)
    return buffer.getvalue()


def _chalk(digit: np.ndarray, rng: np.random.Generator) -> Sheet:
    height, width = SIZE[1], SIZE[0]
    board = np.array([rng.uniform(40, 70), rng.uniform(55, 85), rng.uniform(50, 70)])
    sheet = Sheet(np.broadcast_to(board, (height, width, 3)).astype(np.float32).copy())
    fall_off(sheet, rng, 0.3)
    grain = np.clip(rng.uniform(0.6, 1.0, digit.shape) * (digit / 255), 0, 1)
    draw_ink(sheet, grain, rng, (235, 235, 225))
    noise(sheet, rng, 5)
    return sheet


# The sides a small scan is taken at, all under the model's 28-px frame.
SCAN_SIDES = (8, 16)


def small_scan(digit: np.ndarray, side: int) -> Image.Image:
    """The digit scanned at `side` px a side, dark on light: each pixel the mean of what it
    covers."""
    return Image.fromarray(255 - digit).resize((side, side), Image.Resampling.BOX)


def low_resolution(digit: np.ndarray, rng: np.random.Generator) -> Sheet:
    """A scan at SCAN_SIDES px a side, upscaled by nearest or bilinear resampling."""
    side = int(rng.integers(SCAN_SIDES[0], SCAN_SIDES[1] + 1))
    small = small_scan(digit, side)
    factor = int(rng.integers(4, 12))
    method = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
    big = np.asarray(small.resize((side * factor, side * factor), method), np.float32)
    return Sheet(np.repeat(big[..., None], 3, 2), png=True)


def _photo(digit: np.ndarray, rng: np.random.Generator, **steps: Any) -> Sheet:
    return _sheet(digit.astype(np.float32) / 255, rng, **steps)


def _sheet(
    ink: np.ndarray | None,
    rng: np.random.Generator,
    *,
    colour: str = "black",
    lines: str | None = None,
    light: float = 0.0,
    shade: float = 0.0,
    soft: float = 0.01,
    tilted: bool = False,
    slanted: bool = False,
    blurred: float = 0.0,
    noisy: float = 3.0,
    quality: int | None = None,
    exif: bool = False,
) -> Sheet:
    sheet = paper(rng)
    if lines:
        ruled(sheet, rng, squared=lines == "squared")
    if ink is not None:
        stroke = ink
        if colour == "pencil":
            stroke = ink * rng.uniform(0.5, 1.0, ink.shape).astype(np.float32)
        draw_ink(sheet, stroke, rng, INKS[colour])
    if tilted:
        tilt(sheet, rng)
    if slanted:
        perspective(sheet, rng)
    if light:
        fall_off(sheet, rng, light)
    if shade:
        shadow(sheet, rng, shade, soft)
    if blurred:
        blur(sheet, rng, blurred)
    noise(sheet, rng, noisy)
    sheet.quality = quality or int(rng.integers(85, 96))
    sheet.exif_rotated = exif
    return sheet


def _combined(ink: np.ndarray | None, rng: np.random.Generator) -> Sheet:
    return _sheet(
        ink,
        rng,
        colour=str(rng.choice(list(INKS))),
        lines=str(rng.choice(["ruled", "squared"])),
        light=rng.uniform(0.3, 0.5),
        shade=rng.uniform(0.2, 0.4),
        tilted=True,
        slanted=True,
        blurred=rng.uniform(0.5, 1.5),
        noisy=6,
        quality=int(rng.integers(60, 96)),
        exif=bool(rng.random() < 0.3),
    )


def _q(rng: np.random.Generator) -> int:
    return int(rng.integers(60, 96))


Render = Callable[[np.ndarray, np.random.Generator], Sheet]
# Every condition, alone, then all of them at once.
CONDITIONS: dict[str, Render] = {
    "plain paper": lambda d, r: _photo(d, r),
    "light falls off 30%": lambda d, r: _photo(d, r, light=0.3),
    "light falls off 45%": lambda d, r: _photo(d, r, light=0.45),
    "light falls off 55%": lambda d, r: _photo(d, r, light=0.55),
    "soft shadow": lambda d, r: _photo(d, r, shade=0.4, soft=0.2),
    "shadow edge": lambda d, r: _photo(d, r, shade=r.uniform(0.3, 0.5), soft=0.003),
    "ruled paper": lambda d, r: _photo(d, r, lines="ruled"),
    "squared paper": lambda d, r: _photo(d, r, lines="squared"),
    "blue ink": lambda d, r: _photo(d, r, colour="blue"),
    "red ink": lambda d, r: _photo(d, r, colour="red"),
    "pencil": lambda d, r: _photo(d, r, colour="pencil"),
    "blur σ 1.5": lambda d, r: _photo(d, r, blurred=1.5),
    "sensor noise": lambda d, r: _photo(d, r, noisy=12),
    "tilt ±10°": lambda d, r: _photo(d, r, tilted=True),
    "perspective": lambda d, r: _photo(d, r, slanted=True),
    "JPEG 60–95": lambda d, r: _photo(d, r, quality=_q(r)),
    "EXIF-rotated": lambda d, r: _photo(d, r, exif=True),
    "chalk on a board": _chalk,
    "8–16 px scan, upscaled": low_resolution,
    "ruled, uneven light, blue": lambda d, r: _photo(d, r, lines="ruled", light=0.5, colour="blue"),
    "everything at once": lambda d, r: _combined(d.astype(np.float32) / 255, r),
}


def digit_photos(
    digits: np.ndarray, labels: np.ndarray, condition: str, seed: int = 0
) -> tuple[list[bytes], np.ndarray]:
    """The digits (uint8 N×28×28, white on black) photographed under one condition, seeded."""
    rng = np.random.default_rng([seed, list(CONDITIONS).index(condition)])
    render = CONDITIONS[condition]
    return [encode(render(digit, rng)) for digit in digits], labels


# What a sheet without a digit shows. A look-alike is a letter or sign that, framed, has a
# digit's shape (D as 0, ! as 1, Z as 2, $ as 5, G as 6, B and & as 8, g as 9): no digit reader
# can refuse it on its shape, training.negatives leaves such glyphs out of what it teaches as
# non-digits, and bench/photos.py reports them apart from the non-digits to be refused.
NON_DIGITS = ("blank", "blank ruled", "blank squared", "blank shadowed", "letter", "sign",
              "scribble", "look-alike")  # fmt: skip
LETTERS = "ACEFHKMNPRWXYaehkmnrwxy"
SIGNS = "+=#%@*?"
LOOKALIKES = "DZGBg!$&"


def _glyph(text: str, rng: np.random.Generator) -> np.ndarray:
    image = Image.new("L", (160, 160), 0)
    font = ImageFont.load_default(size=int(rng.integers(90, 130)))
    ImageDraw.Draw(image).text((80, 80), text, fill=255, font=font, anchor="mm",
                               stroke_width=int(rng.integers(2, 6)), stroke_fill=255)  # fmt: skip
    return np.asarray(image, np.float32) / 255


def _scribble(rng: np.random.Generator) -> np.ndarray:
    image = np.zeros((160, 160), np.float32)
    points = (rng.uniform(20, 140, (int(rng.integers(6, 14)), 2))).astype(np.int32)
    cv2.polylines(image, [points], False, 1.0, int(rng.integers(4, 10)), cv2.LINE_AA)
    return image


def non_digit_photos(count: int, seed: int = 0, kinds: tuple[str, ...] = NON_DIGITS) -> list[bytes]:
    """`count` photos of sheets without a digit, the kinds in turn, under random conditions:
    for the service to refuse, and for training's negatives."""
    rng = np.random.default_rng([seed, 99])
    photos = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        ink: np.ndarray | None = None
        if kind == "letter":
            ink = _glyph(str(rng.choice(list(LETTERS))), rng)
        elif kind == "sign":
            ink = _glyph(str(rng.choice(list(SIGNS))), rng)
        elif kind == "look-alike":
            ink = _glyph(str(rng.choice(list(LOOKALIKES))), rng)
        elif kind == "scribble":
            ink = _scribble(rng)
        lines = {"blank ruled": "ruled", "blank squared": "squared"}.get(kind)
        if ink is None and lines is None and kind != "blank shadowed" and rng.random() < 0.5:
            lines = str(rng.choice(["ruled", "squared"]))
        if rng.random() < 0.3:
            photos.append(encode(_combined(ink, rng)))
            continue
        sheet = _sheet(
            ink,
            rng,
            colour=str(rng.choice(list(INKS))),
            lines=lines,
            light=rng.uniform(0, 0.5),
            shade=rng.uniform(0.3, 0.5) if kind == "blank shadowed" else 0.0,
            tilted=bool(rng.random() < 0.5),
        )
        photos.append(encode(sheet))
    return photos
