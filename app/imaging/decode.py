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

from app.errors import (
    CorruptImageError,
    InternalError,
    RequestError,
    TooLargeError,
    UnsupportedMediaError,
)

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # PPM also reads PGM and PBM
# Longest side an image is reduced to before any numpy work: a digit needs far fewer pixels,
# and this bounds the per-request memory whatever the camera.
WORK_SIZE = 1024
# Least longest side a JPEG is decoded at (libjpeg scales by 1/2..1/8 while decoding, nearly
# free): the cleaning works at up to 512 px (app.imaging.clean), so a photo needs no more, and
# a little less lets a 12-MP photo (4000 px) decode at 1/8, which skips most of its IDCT.
DRAFT_SIZE = 480
# Grey levels (of 255) between paper and the strongest ink below which the image counts as blank:
# JPEG noise and paper texture stay under it, a pencil stroke does not.
MIN_CONTRAST = 40
# Most memory one image's decoding may take (Settings.decode_memory_bytes).
DEFAULT_DECODE_MEMORY = 128 * 1024 * 1024

# File signatures of FORMATS (WebP is checked apart: its tag is not at the start).
_SIGNATURES = (
    *(b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*"),
    *(b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"),
)
_PNG = b"\x89PNG\r\n\x1a\n"
# Chunks that change what a greyscale PNG's pixels mean: transparency and EXIF orientation.
_PNG_MEANINGFUL = frozenset({b"tRNS", b"eXIf"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_ALPHA = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Modes whose pixels can be averaged before conversion to grey, so a large image is reduced
# while it is still one buffer rather than after every intermediate copy is made at full size.
# Not P, PA or 1 (their values are indices or bits), nor HSV (hue goes round a circle).
_AVERAGEABLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
                          "I", "F"})  # fmt: skip
# Peak bytes of memory per pixel while decoding, as measured (the README's "How the limits add
# up"): one-byte modes decode in place; four-byte ones (RGB is stored like RGBA) peak at two
# copies; 16-bit ones at their two bytes and the 32-bit copy they are reduced in; a WebP at
# four copies, since libwebp decodes into buffers of its own that Pillow copies twice.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1} | dict.fromkeys(_SIXTEEN_BIT, 6)
_OTHER_MODES_BYTES_PER_PIXEL = 8
_WEBP_BYTES_PER_PIXEL = 16
# What Pillow's decoders raise on damaged data of a format they recognised.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def decode(
    data: bytes, max_pixels: int | None = None, max_decode_bytes: int = DEFAULT_DECODE_MEMORY
) -> np.ndarray:
    """`decode_scaled`'s grey levels alone."""
    return decode_scaled(data, max_pixels, max_decode_bytes)[0]


def decode_scaled(
    data: bytes, max_pixels: int | None = None, max_decode_bytes: int = DEFAULT_DECODE_MEMORY
) -> tuple[np.ndarray, float]:
    """Decode an upload to uint8 grey levels (H, W), in its own polarity (ink dark or light).

    EXIF orientation is applied, a transparent background becomes paper, and an image longer
    than WORK_SIZE is reduced to it. An image of more than `max_pixels` pixels is refused
    from its header (without a limit, Pillow's own decompression-bomb guard still applies),
    and so is one whose decoding would take more than `max_decode_bytes` (decode_cost).
    Also returns the uploaded image's pixels (after EXIF rotation) per pixel of the levels.
    """
    plain = _plain_grey_png(data, max_pixels)
    if plain is not None:
        return plain, 1.0
    img, side = _open(data, max_pixels, max_decode_bytes)
    factor = math.ceil(max(img.size) / WORK_SIZE)
    if factor > 1 and img.mode in _SIXTEEN_BIT:
        img = img.convert("I")  # Pillow reduces no 16-bit mode
    if factor > 1 and img.mode in _AVERAGEABLE:
        img = img.reduce(factor)
    grey = _grey(img)
    factor = math.ceil(max(grey.size) / WORK_SIZE)
    if factor > 1:
        grey = grey.reduce(factor)
    levels = np.asarray(grey)
    if levels.dtype != np.uint8:  # a guard for the conversions above, which all give "L"
        raise InternalError(f"mode {img.mode} gave {levels.dtype} levels, not uint8")
    return levels, side / max(levels.shape)


def decode_cost(mode: str, size: tuple[int, int], fmt: str | None) -> int:
    """Bytes of memory decoding an image of this mode, size and format takes at its peak."""
    width, height = size
    if fmt == "WEBP":
        return width * height * _WEBP_BYTES_PER_PIXEL
    return width * height * _BYTES_PER_PIXEL.get(mode, _OTHER_MODES_BYTES_PER_PIXEL)


def is_cheap(data: bytes, max_bytes: int, max_pixels: int) -> bool:
    """Whether an upload is cheap enough to read on the event loop: a PNG of at most
    `max_bytes` whose header declares at most `max_pixels` pixels. Looks at the header only."""
    if len(data) > max_bytes or not data.startswith(_PNG) or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack_from(">II", data, 16)
    return width * height <= max_pixels


def describe(data: bytes) -> str:
    """What an upload claims to be, from its first bytes: for logs."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    names = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "TIFF", *(("PNM",) * 6))
    for name, signature in zip(names, _SIGNATURES, strict=True):
        if data.startswith(signature):
            return name
    return "unknown format"


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
    """8-bit grey levels ("L"), transparency flattened, from every mode Pillow opens."""
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        return _scaled(np.asarray(img))
    if mode in _ALPHA or "transparency" in img.info:
        return _flatten_alpha(img)
    if mode == "L":
        return img
    if mode == "LAB":
        return img.getchannel("L")  # Pillow converts LAB to nothing else; L is its lightness
    if mode == "YCbCr":
        return img.getchannel("Y")
    if mode == "HSV":
        return img.convert("RGB").convert("L")
    if mode in ("1", "P", "RGB", "RGBX", "CMYK"):
        return img.convert("L")
    raise UnsupportedMediaError(f"unsupported pixel format {mode}")


def _scaled(levels: np.ndarray) -> Image.Image:
    """16-bit, 32-bit integer and float levels as 8-bit ones.

    Levels that fit 8 bits are kept (integers within 0..255, floats within 0..255 that are not
    all within 0..1); 16-bit ones are scaled by 255/65535 rather than clipped at 255 (a 16-bit
    mode always, and integers within 0..65535); floats within 0..1 by 255. Anything else, such
    as negative or larger integers, is stretched from its own darkest to its lightest level.
    """
    values = levels.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        raise CorruptImageError("the image has no finite pixel values")
    values[~finite] = values[finite].min()
    low, high = values.min(), values.max()
    integers = levels.dtype.kind in "iu"
    if low >= 0 and high <= 1 and not integers:
        scale, offset = 255.0, 0.0
    elif low >= 0 and high <= 255 and levels.dtype.itemsize >= 4:
        scale, offset = 1.0, 0.0
    elif low >= 0 and high <= 65535 and integers:
        scale, offset = 1 / 257, 0.0
    elif high > low:
        scale, offset = 255 / (high - low), low
    else:
        scale, offset = 0.0, 0.0
    grey = np.clip((values - offset) * scale + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey)


def _open(
    data: bytes, max_pixels: int | None, max_decode_bytes: int = DEFAULT_DECODE_MEMORY
) -> tuple[Image.Image, int]:
    """The image loaded (a JPEG at its draft size) and oriented, and its own longest side."""
    if not data:
        raise UnsupportedMediaError("the upload is empty (0 bytes), expected an image")
    webp = _webp_size(data)
    if webp is not None:  # a WebP's cost does not depend on its mode
        _refuse_if_costly(webp, None, "WEBP", max_pixels, max_decode_bytes)
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLargeError(f"the image has too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise _unreadable(data) from exc
    except _DECODE_ERRORS as exc:
        raise _corrupt("image", exc) from exc
    # Image.open has parsed the header only, so this refuses bombs before they inflate.
    size = img.size
    # JPEG only: decode grey, at 1/2..1/8 scale if big. Pillow keeps both sides at least the
    # requested ones: asked for the image's own shape, the longer side is what counts.
    shrink = max(1.0, max(size) / DRAFT_SIZE)
    img.draft("L", (max(1, math.floor(size[0] / shrink)), max(1, math.floor(size[1] / shrink))))
    _refuse_if_costly(size, img.mode, img.format, max_pixels, max_decode_bytes, img.size)
    try:
        img.load()
        # Checked first because exif_transpose costs several times more even when it does nothing.
        if img.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            ImageOps.exif_transpose(img, in_place=True)
    except _DECODE_ERRORS as exc:
        raise _corrupt(img.format or "image", exc) from exc
    return img, max(size)


def _refuse_if_costly(
    size: tuple[int, int],
    mode: str | None,
    fmt: str | None,
    max_pixels: int | None,
    max_decode_bytes: int,
    decoded: tuple[int, int] | None = None,
) -> None:
    """TooLargeError for an image of more than `max_pixels` pixels, or whose decoding at the
    `decoded` size (a JPEG's draft size; else its own) would take more than `max_decode_bytes`."""
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise TooLargeError(
            f"the image is {width}×{height} = {width * height} pixels, more than {max_pixels}"
        )
    cost = decode_cost(mode or "", decoded or size, fmt)
    if cost > max_decode_bytes:
        kind = f"{fmt} ({mode})" if mode else fmt
        raise TooLargeError(
            f"decoding this {width}×{height} {kind} would take {cost / 2**20:.0f} MiB, "
            f"more than the {max_decode_bytes / 2**20:.0f} MiB allowed for one image"
        )


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """A WebP's canvas size from its first chunk's header, None for anything else: Pillow's
    WebP opener sets up libwebp's whole decoder, buffers included, before it tells the size."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP" or len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":  # extended: the canvas, 24 bits a side, minus one
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L":  # lossless: 14 bits a side, minus one, after a signature byte
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + (bits >> 14 & 0x3FFF)
    if chunk == b"VP8 ":  # lossy: 14 bits a side after the frame tag and start code
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    return None


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
