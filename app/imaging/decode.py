"""Decoding an upload to grey levels: the formats accepted, the guards against decompression
bombs, and libspng's fast path for MNIST's own form.

Animated GIF, WebP and PNG files are accepted and their first frame is used: a drawing app that
exports an animation still shows one digit, and refusing it would help nobody.
"""

import io
import math
import struct
import zlib

import numpy as np
import pyspng
from PIL import ExifTags, Image, ImageChops, ImageOps, ImageStat, UnidentifiedImageError

from app.errors import CorruptImageError, RequestError, TooLargeError, UnsupportedMediaError

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # PPM also reads PGM and PBM
# Longest side an image is reduced to before any numpy work: a digit needs far fewer pixels,
# and this bounds the per-request memory whatever the camera.
WORK_SIZE = 1024
# Grey levels (of 255) between paper and the strongest ink below which the image counts as blank:
# JPEG noise and paper texture stay under it, a pencil stroke does not.
MIN_CONTRAST = 40

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


def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Decode an upload to uint8 grey levels (H, W), in its own polarity (ink dark or light).

    EXIF orientation is applied, a transparent background becomes paper, and an image longer
    than WORK_SIZE is reduced to it. An image of more than `max_pixels` pixels is refused
    from its header (without a limit, Pillow's own decompression-bomb guard still applies).
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


def _plain_grey_png(data: bytes, max_pixels: int | None) -> np.ndarray | None:
    """An intact 8-bit greyscale PNG with nothing but pixels to read, decoded by libspng;
    None for every other upload, which Pillow reads.

    That is MNIST's own form, and libspng decodes it several times faster than Pillow
    (bench/service.py's decode_libspng_us and decode_pillow_us). pyspng has libspng skip
    CRCs, so they are checked here: a damaged file goes to Pillow, which says what is wrong
    with it.
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
    if (depth, colour) != (8, 0) or max(width, height) > WORK_SIZE:
        return None
    if max_pixels is not None and width * height > max_pixels:
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


def _open(data: bytes, max_pixels: int | None) -> Image.Image:
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
    if max_pixels is not None and width * height > max_pixels:
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
