"""The photos and drawings the speed benchmarks send: seeded, made from MNIST **test** digits.

A phone photo of one digit on paper at 1 MP (1152×864) and at 12 MP (4000×3000, ~3 MB like a
phone's), the digit 15–60% of the frame's height, JPEG quality 90; a 6-digit number drawn on
a canvas (~600×150 PNG) and photographed on paper at 1 MP. training/photos.py renders the
paper and the ink, training/numbers.py writes the numbers.
"""

import io
from typing import NamedTuple

import numpy as np
from PIL import Image

from training import photos
from training.numbers import make_number

ONE_MP = (1152, 864)
TWELVE_MP = (4000, 3000)
CANVAS = (600, 150)
QUALITY = 90
# Sensor noise (grey levels): what brings a 12-MP JPEG at quality 90 to a phone's 3–5 MB.
NOISE = 8.0


class Sample(NamedTuple):
    """Encoded bytes and what is written in them."""

    data: bytes
    text: str


def digit_photo(digit: np.ndarray, label: int, size: tuple[int, int], seed: int) -> Sample:
    """One MNIST digit (uint8 28×28, white on black) drawn on paper, photographed at `size`."""
    rng = np.random.default_rng(seed)
    sheet = photos.paper(rng, size)
    photos.draw_ink(sheet, digit.astype(np.float32) / 255, rng)
    photos.noise(sheet, rng, NOISE)
    sheet.quality = QUALITY
    return Sample(photos.encode(sheet), str(label))


def number_canvas(images: np.ndarray, labels: np.ndarray, seed: int, length: int = 6) -> Sample:
    """A number of `length` digits drawn across a CANVAS-sized canvas, as its PNG export."""
    rng = np.random.default_rng(seed)
    number = make_number(images, labels, length, rng, height=70, spacing=(0.2, 0.6))
    width, height = CANVAS
    canvas = np.full((height, width), 255, np.uint8)
    h, w = number.image.shape
    # make_number's margins are paper: centring crops nothing but paper when they do not fit.
    top, left = (height - h) // 2, (width - w) // 2
    rows, cols = min(h, height), min(w, width)
    canvas[max(0, top) : max(0, top) + rows, max(0, left) : max(0, left) + cols] = number.image[
        max(0, -top) : max(0, -top) + rows, max(0, -left) : max(0, -left) + cols
    ]
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, "PNG")
    return Sample(buffer.getvalue(), number.text)


def number_photo(
    images: np.ndarray, labels: np.ndarray, seed: int, length: int = 6, size=ONE_MP
) -> Sample:
    """A number of `length` digits written on paper and photographed at `size`."""
    rng = np.random.default_rng(seed)
    number = make_number(images, labels, length, rng, height=110, spacing=(0.05, 0.3))
    sheet = photos.paper(rng, size)
    # The line's height as a share of the photo's: as wide as the sheet allows, no wider.
    photos.draw_ink(sheet, 1 - number.image / 255, rng, height_fraction=(0.12, 0.2))
    photos.noise(sheet, rng, NOISE)
    sheet.quality = QUALITY
    return Sample(photos.encode(sheet), number.text)
