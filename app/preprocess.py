"""Turn an uploaded image into the 1×32×32 float32 input LeNet-5 expects.

The model learnt MNIST: white digits (255) on black (0), size-normalised into a 20×20 box,
placed by centre of mass in a 28×28 frame, padded by 2 px to 32×32 and mapped linearly onto
[background, ink]. Uploads go through the same steps. A 28×28 image already in that form skips
them: its input is bit for bit what offline evaluation feeds the model (training.mnist.prepare),
so the service's accuracy on MNIST is the model's own.

Animated GIF, WebP and PNG files are accepted and their first frame is used: a drawing app that
exports an animation still shows one digit, and refusing it would help nobody.

numpy, Pillow and libspng only: this runs on every request and must stay light.
"""

import io
import math
import struct
import zlib
from collections.abc import Sequence

import numpy as np
import pyspng
from PIL import ExifTags, Image, ImageChops, ImageOps, ImageStat, UnidentifiedImageError

from app.errors import (
    CorruptImageError,
    NoInkError,
    RequestError,
    TooLargeError,
    UnsupportedMediaError,
)
from model.spec import INPUT, InputSpec

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # PPM also reads PGM and PBM
DEFAULT_MAX_PIXELS = 40_000_000
# Longest side an image is reduced to before any numpy work: a digit needs far fewer pixels,
# and this bounds the per-request memory whatever the camera.
WORK_SIZE = 1024
# Grey levels (of 255) between paper and the strongest ink below which the image counts as blank:
# JPEG noise and paper texture stay under it, a pencil stroke does not.
MIN_CONTRAST = 40
# Ink weaker than this fraction of the strongest stroke is paper texture or compression noise.
NOISE_FRACTION = 0.2

# File signatures of FORMATS (WebP is checked apart: its tag is not at the start).
_SIGNATURES = (
    *(b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*"),
    *(b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"),
)
_PNG = b"\x89PNG\r\n\x1a\n"
# Chunks that change what a greyscale PNG's pixels mean: transparency and EXIF orientation.
_PNG_MEANINGFUL = frozenset({b"tRNS", b"eXIf"})
_SIXTEEN_BIT = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# What Pillow's decoders raise on damaged data of a format they recognised.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


DEFAULT_SPEC = INPUT


def to_model_input(
    data: bytes, spec: InputSpec = DEFAULT_SPEC, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """The encoded image `data` as the float32 (1, size, size) model input."""
    inputs, errors = to_model_inputs([data], spec, max_pixels)
    if errors:
        raise errors[0]
    return inputs[0]


def to_model_inputs(
    uploads: Sequence[bytes], spec: InputSpec = DEFAULT_SPEC, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, dict[int, RequestError]]:
    """The uploads as one float32 (M, 1, size, size) batch of model inputs, in order, and the
    error of each upload that cannot be one, by its index (M uploads have none).

    Each image is decoded on its own; then the ones already in MNIST's format are recognised
    all at once and every frame is mapped onto the model's range in one step. For a digit,
    numpy's cost per call outweighs the arithmetic, so a batch costs far less per image than
    one image alone (bench/service.py).
    """
    greys: dict[int, np.ndarray] = {}
    errors: dict[int, RequestError] = {}
    for index, data in enumerate(uploads):
        try:
            greys[index] = decode(data, max_pixels)
        except RequestError as exc:
            errors[index] = exc
    frames = []
    for (index, grey), ready in zip(greys.items(), _in_mnist_format(list(greys.values()), spec),
                                    strict=True):  # fmt: skip
        try:
            frames.append(grey if ready else _reframe(grey, spec))
        except RequestError as exc:
            errors[index] = exc
    return frames_to_inputs(frames, spec), errors


def decode(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an upload to uint8 grey levels (H, W), in its own polarity (ink dark or light).

    EXIF orientation is applied, a transparent background becomes paper, and an image longer
    than WORK_SIZE is reduced to it.
    """
    plain = _plain_grey_png(data, max_pixels)
    if plain is not None:
        return plain
    img = _open(data, max_pixels)
    try:
        grey = _grey(img)
    except ValueError as exc:  # Pillow cannot convert a few exotic modes, such as LAB
        raise UnsupportedMediaError(f"unsupported pixel format {img.mode}: {exc}") from exc
    factor = math.ceil(max(grey.size) / WORK_SIZE)
    if factor > 1:
        grey = grey.reduce(factor)
    return np.asarray(grey)


def _plain_grey_png(data: bytes, max_pixels: int) -> np.ndarray | None:
    """An intact 8-bit greyscale PNG with nothing but pixels to read, decoded by libspng;
    None for every other upload, which Pillow reads.

    That is MNIST's own form, and libspng decodes it in a fifth of Pillow's time
    (bench/service.py). pyspng has libspng skip CRCs, so they are checked here: a damaged
    file goes to Pillow, which says what is wrong with it.
    """
    if not data.startswith(_PNG):
        return None
    view = memoryview(data)
    header = None
    pos = len(_PNG)
    while True:
        if pos + 12 > len(data):
            return None  # no IEND: truncated
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data) or zlib.crc32(view[pos + 4 : end]) != int.from_bytes(
            view[end : end + 4]
        ):
            return None
        if kind == b"IHDR" and length == 13:
            header = struct.unpack_from(">IIBB", data, pos + 8)
        elif kind in _PNG_MEANINGFUL:
            return None
        elif kind == b"IEND":
            break
        pos = end + 4
    if header is None:
        return None
    width, height, depth, colour = header
    if (depth, colour) != (8, 0) or width * height > max_pixels or max(width, height) > WORK_SIZE:
        return None
    try:
        return pyspng.load(data)
    except RuntimeError:
        return None


def _grey(img: Image.Image) -> Image.Image:
    """8-bit grey levels, transparency flattened."""
    if img.mode in _SIXTEEN_BIT:
        # convert("L") would clip 16-bit levels at 255 rather than scale them.
        return img.convert("I").point(lambda v: v / 257 + 0.5, "L")
    if img.mode in _ALPHA or "transparency" in img.info:
        return _flatten_alpha(img)
    return img if img.mode == "L" else img.convert("L")


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise UnsupportedMediaError("the upload is empty (0 bytes), expected an image")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLargeError(f"the image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise _unreadable(data) from exc
    except _DECODE_ERRORS as exc:
        raise _corrupt("image", exc) from exc
    # Image.open has parsed the header only, so this refuses bombs before they inflate.
    width, height = img.size
    if width * height > max_pixels:
        raise TooLargeError(
            f"the image is {width}×{height} = {width * height} pixels, more than {max_pixels}"
        )
    img.draft("L", (WORK_SIZE, WORK_SIZE))  # JPEG only: decode grey, at 1/2..1/8 scale if big
    try:
        img.load()
        # Checked first because exif_transpose costs several times more even when it does nothing.
        if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            ImageOps.exif_transpose(img, in_place=True)
    except _DECODE_ERRORS as exc:
        raise _corrupt(img.format or "image", exc) from exc
    return img


def _unreadable(data: bytes) -> RequestError:
    # A supported format's signature means the file is damaged (422), not of the wrong type.
    if data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return _corrupt("image", None)
    return UnsupportedMediaError(
        "the upload is not an image in a supported format (PNG, JPEG, GIF, BMP, TIFF, WebP, PGM)"
    )


def _corrupt(kind: str, exc: Exception | None) -> CorruptImageError:
    detail = f": {exc}" if exc else ""
    return CorruptImageError(f"the {kind} file is corrupt or truncated{detail}")


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Lay the transparent background on paper.

    The paper is the colour under the transparent pixels, as in an image drawn on white whose
    white was then made transparent. Canvas exports, though, leave that colour black whatever
    the ink: when no opaque pixel stands out from it, the paper is the opposite shade.
    """
    grey, alpha = img.convert("RGBA").convert("LA").split()
    clear = alpha.point(lambda a: 255 if a < 128 else 0)
    paper = ImageStat.Stat(grey, clear).median[0]
    darkest, lightest = ImageStat.Stat(grey, ImageChops.invert(clear)).extrema[0]
    if max(paper - darkest, lightest - paper) < MIN_CONTRAST:
        paper = 255 if paper < 128 else 0
    return Image.composite(grey, Image.new("L", img.size, paper), alpha)


def _reframe(grey: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The digit in `grey` as MNIST stores one: uint8 (frame, frame), white ink on black; the
    ink cropped, fitted into the digit box and placed by its centre of mass."""
    ink = _ink(grey)
    rows, cols = map(_span, _profiles(ink))  # not empty: the strongest stroke has ink 1
    return _place(_fit(ink[rows, cols], spec.digit_box), spec.frame)


def _in_mnist_format(greys: list[np.ndarray], spec: InputSpec) -> list[bool]:
    """Which images are in MNIST's own format: frame × frame, ink only inside a digit-box
    square, and centred.

    Everything outside the ink's box must be exactly 0, so a light background never passes.
    MNIST's centring leaves every centre of mass within half a pixel of frame / 2.
    """
    shape = (spec.frame, spec.frame)
    candidates = [i for i, grey in enumerate(greys) if grey.shape == shape]
    answers = [False] * len(greys)
    if not candidates:
        return answers
    count, frame = len(candidates), spec.frame
    # In float32 through matrix products, which beat numpy's small reductions: every sum here
    # is an integer below 2**24, so float32 holds it exactly.
    stack = np.stack([greys[i] for i in candidates]).astype(np.float32)
    ones = np.ones(frame, np.float32)
    rows = (stack.reshape(count * frame, frame) @ ones).reshape(count, frame)
    profiles = np.concatenate((rows, ones @ stack))  # rows of each image, then its columns
    inked = profiles > 0
    first = inked.argmax(1)
    last = frame - 1 - inked[:, ::-1].argmax(1)
    mass = (profiles @ ones).astype(np.float64)
    centre = (profiles @ np.arange(frame, dtype=np.float32)).astype(np.float64) / np.maximum(
        mass, 1
    )
    fits = (mass > 0) & (last - first < spec.digit_box) & (np.abs(centre - frame / 2) <= 1)
    both = fits[:count] & fits[count:]
    for i, ready in zip(candidates, both.tolist(), strict=True):
        answers[i] = ready
    return answers


# Profiles are short, and plain Python on them beats a dozen numpy calls' overhead.
def _profiles(a: np.ndarray) -> tuple[list[float], list[float]]:
    """Row and column sums."""
    return a.sum(axis=1).tolist(), a.sum(axis=0).tolist()


def _span(profile: list[float]) -> slice:
    """From the first to the last non-zero entry of a profile."""
    nonzero = [i for i, mass in enumerate(profile) if mass]
    return slice(nonzero[0], nonzero[-1] + 1)


def _centre(profile: list[float]) -> float:
    """Centre of mass of a profile, in pixel indices."""
    return sum(i * mass for i, mass in enumerate(profile)) / sum(profile)


def _ink(grey: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] on a background of 0, whichever shade the ink and paper have."""
    border = np.concatenate((grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]))
    paper = float(np.median(border))
    darker, lighter = paper - float(grey.min()), float(grey.max()) - paper
    peak = max(darker, lighter)
    if peak < MIN_CONTRAST:
        raise NoInkError("the image contains no ink: it looks blank")
    levels = grey.astype(np.float32)
    ink = paper - levels if darker > lighter else levels - paper
    # A soft threshold: noise goes to 0 while stroke edges keep their gradation.
    noise = NOISE_FRACTION * peak
    return np.clip((ink - noise) / (peak - noise), 0, 1)


def _fit(ink: np.ndarray, box: int) -> np.ndarray:
    """Scale so the longer side is `box` pixels, anti-aliased like MNIST's size normalisation."""
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR))


def _place(digit: np.ndarray, frame: int) -> np.ndarray:
    """Put the centre of mass at frame / 2, as MNIST did, keeping all the ink in the frame."""
    height, width = digit.shape
    cy, cx = map(_centre, _profiles(digit))
    top = min(max(round(frame / 2 - cy), 0), frame - height)
    left = min(max(round(frame / 2 - cx), 0), frame - width)
    out = np.zeros((frame, frame), np.uint8)
    out[top : top + height, left : left + width] = np.rint(digit * 255)
    return out


def frames_to_inputs(frames: Sequence[np.ndarray], spec: InputSpec = DEFAULT_SPEC) -> np.ndarray:
    """Pad uint8 MNIST-style frames to the input size and map them onto the model's range:
    float32 (N, 1, size, size)."""
    pad = (spec.size - spec.frame) // 2
    out = np.full((len(frames), 1, spec.size, spec.size), spec.background, np.float32)
    if frames:
        inner = slice(pad, pad + spec.frame)
        out[:, 0, inner, inner] = spec.levels.take(np.stack(frames))
    return out
