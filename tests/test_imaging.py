"""app.imaging on real MNIST test digits, re-encoded the ways users upload them."""

import importlib
import io
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from app.errors import (
    CorruptImageError,
    NoInkError,
    TooLargeError,
    UnsupportedMediaError,
    http_status,
)
from app.imaging import decode, frames_to_inputs, to_model_input, to_model_inputs
from app.imaging.clean import (
    RULE_LENGTH,
    _histogram,
    _may_hold_a_line,
    _median,
    _repeated,
    _shadow_edge,
    clean,
)
from app.imaging.decode import _grey, _plain_grey_png, decode_scaled
from app.imaging.frame import _fit, frame_ink
from app.imaging.locate import labelled, parts_of
from model.spec import INPUT as DEFAULT_SPEC
from model.spec import InputSpec
from training.numbers import make_number
from training.photos import small_scan

# The module, not the function the package exports under its name.
clean_module = importlib.import_module("app.imaging.clean")

Digit = np.ndarray  # uint8 (28, 28), white ink on black, as MNIST stores it


@pytest.fixture(scope="module")
def mnist(mnist_test) -> np.ndarray:
    """The first 1000 MNIST test images."""
    return mnist_test[0][:1000]


@pytest.fixture(scope="module")
def digits(mnist: np.ndarray) -> np.ndarray:
    """Digits for the re-encoding cases: the first 20 test digits and the first 8 (index 61),
    so that all ten classes are there."""
    return mnist[[*range(20), 61]]


def encode(img: Image.Image | np.ndarray, fmt: str, **params: object) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def direct_transform(digit: Digit, spec: InputSpec = DEFAULT_SPEC) -> np.ndarray:
    """The offline model input: pad by 2, then background + v · (ink − background) / 255,
    in float32 as training.mnist.prepare computes it."""
    padded = np.pad(digit, 2).astype(np.float32)
    return (spec.background + padded * ((spec.ink - spec.background) / 255))[None]


def upscaled(image: np.ndarray, size: int = 280) -> Image.Image:
    """Enlarged smoothly, as a scan or a drawing would be."""
    return Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)


def on_paper(digit: Digit, size: int = 280) -> Image.Image:
    """The digit as black ink on white paper."""
    return upscaled(255 - digit, size)


def blurred(a: np.ndarray) -> np.ndarray:
    kernel = np.array([1, 4, 6, 4, 1]) / 16  # binomial, σ = 1 px
    a = a.astype(np.float64)
    for axis in (0, 1):
        a = np.apply_along_axis(np.convolve, axis, a, kernel, mode="same")
    return a


def assert_same_digits(uploads: list[bytes], digits: np.ndarray) -> None:
    """Each upload's model input shows its digit as MNIST has it.

    The score is the correlation of the two inputs after a σ = 1 px blur: re-normalising a
    digit legitimately moves it by up to 1 px (MNIST's centres of mass lie anywhere within half
    a pixel of the centre) and thins faint edges, which a raw pixel correlation punishes as much
    as a wrong digit. Measured on 300 test digits, re-encodings score 0.98-0.99 on average and
    never below 0.79, while the same digits shifted by 1 px average 0.91, by 2 px 0.69, shrunk to
    80 % 0.81, rotated 90° 0.31, mirrored 0.57, inverted -0.86, and a different digit 0.44.
    """
    scores = [
        np.corrcoef(blurred(to_model_input(data)[0]).ravel(), blurred(expected[0]).ravel())[0, 1]
        for data, expected in zip(uploads, map(direct_transform, digits), strict=True)
    ]
    assert min(scores) > 0.75, scores
    assert np.mean(scores) > 0.95, scores


def test_mnist_digit_passes_through_unchanged(mnist: np.ndarray) -> None:
    for index, digit in enumerate(mnist):
        out = to_model_input(encode(digit, "PNG"))
        assert np.array_equal(out, direct_transform(digit)), f"test digit {index}"


def test_mnist_digit_range_is_the_affine_map_of_the_issue(mnist: np.ndarray) -> None:
    out = to_model_input(encode(mnist[0], "PNG"))
    literal = -0.1 + np.pad(mnist[0], 2) / 255 * 1.275
    assert out.shape == (1, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], literal, rtol=0, atol=2e-7)  # within a float32 step
    assert out.min() == np.float32(-0.1) and out.max() == np.float32(1.175)


def test_mnist_digit_matches_offline_evaluation_to_the_bit(mnist: np.ndarray) -> None:
    prepare = pytest.importorskip("training.mnist").prepare  # needs the training extra
    uploads = np.stack([to_model_input(encode(digit, "PNG")) for digit in mnist])
    assert np.array_equal(uploads, prepare(mnist))


def test_levels_follow_the_spec() -> None:
    spec = InputSpec(background=0.0, ink=1.0, size=36)
    frame = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)  # every level
    out = frames_to_inputs([frame], spec)[0]
    assert out.shape == (1, 36, 36)
    np.testing.assert_allclose(out[0, 4:32, 4:32], frame / 255, rtol=0, atol=1e-7)
    assert not out[0, :4].any() and not out[0, :, 32:].any()


def test_a_batch_gives_each_upload_what_it_gives_alone(mnist: np.ndarray, digits) -> None:
    uploads = [
        *(encode(digit, "PNG") for digit in mnist[:30]),
        encode(on_paper(digits[3]), "PNG"),
        b"not an image",
        encode(in_corner(digits[4]), "PNG"),
        encode(np.zeros((28, 28), np.uint8), "PNG"),  # blank
        encode(255 - digits[5], "PNG"),
        encode(digits[6], "JPEG"),
    ]
    inputs, errors, *_ = to_model_inputs(uploads)
    assert sorted(errors) == [31, 33]
    assert isinstance(errors[31], UnsupportedMediaError)
    assert isinstance(errors[33], NoInkError)
    alone = [to_model_input(u) for i, u in enumerate(uploads) if i not in errors]
    assert inputs.shape == (len(uploads) - 2, 1, 32, 32)
    assert np.array_equal(inputs, np.stack(alone))


def test_an_empty_batch_is_empty() -> None:
    inputs, errors, *_ = to_model_inputs([])
    assert inputs.shape == (0, 1, 32, 32) and errors == {}


def in_corner(digit: Digit) -> Digit:
    """The digit moved to the top left corner of its 28×28 frame."""
    rows, cols = np.nonzero(digit)
    ink = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    moved = np.zeros_like(digit)
    moved[: ink.shape[0], : ink.shape[1]] = ink
    return moved


def test_off_centre_mnist_frame_is_recentred(digits: np.ndarray) -> None:
    moved = [in_corner(digit) for digit in digits]
    assert_same_digits([encode(m, "PNG") for m in moved], digits)


@pytest.mark.parametrize("shape", [(90, 60), (60, 90), (13, 200), (200, 7), (20, 20), (5, 3)])
def test_framing_resamples_as_pillows_bilinear_resize(shape: tuple[int, int]) -> None:
    ink = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    height, width = shape
    scale = DEFAULT_SPEC.digit_box / max(shape)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = Image.fromarray(ink, "F").resize(size, Image.Resampling.BILINEAR)
    np.testing.assert_allclose(_fit(ink, DEFAULT_SPEC.digit_box), np.asarray(image), atol=1e-6)


# Fitted to 20 rows of 1 or 2 columns, 1 or 2 rows of 20 columns, or 1 pixel.
@pytest.mark.parametrize("shape", [(40, 1), (40, 4), (1, 40), (4, 40), (1, 1), (2, 2)])
def test_a_stroke_a_pixel_or_two_wide_is_framed_at_the_centre(shape: tuple[int, int]) -> None:
    frame = frame_ink(np.ones(shape, np.float32)).astype(np.float64)
    rows, columns = frame.sum(axis=1), frame.sum(axis=0)
    centre = np.arange(DEFAULT_SPEC.frame)
    assert frame.sum() > 0
    assert abs(rows @ centre / rows.sum() - DEFAULT_SPEC.frame / 2) <= 1
    assert abs(columns @ centre / columns.sum() - DEFAULT_SPEC.frame / 2) <= 1


Encoder = Callable[[Digit, Digit], bytes]  # (digit, another digit) -> file


def _rgba_canvas(digit: Digit, ink: tuple[int, int, int]) -> Image.Image:
    """A drawing-app export: the stroke in (straight) alpha, RGB the ink under the stroke and
    black under the transparent background."""
    alpha = upscaled(digit)
    rgb = Image.new("RGB", alpha.size, (0, 0, 0))
    rgb.paste(ink, mask=alpha.point(lambda a: 255 * (a > 0)))
    rgb.putalpha(alpha)
    return rgb


def _palette_with_transparency(digit: Digit, _: Digit) -> bytes:
    img = on_paper(digit).convert("P")
    paper = img.getpixel((0, 0))
    return encode(img, "PNG", transparency=paper)


def _gif_canvas_export(digit: Digit, _: Digit) -> bytes:
    """A canvas export turned GIF: the transparent entry and the ink are both black."""
    stroke = Image.fromarray((np.asarray(upscaled(digit)) >= 128).astype(np.uint8)).convert("P")
    stroke.putpalette([0, 0, 0, 0, 0, 0])  # entry 0 the background, entry 1 the ink
    return encode(stroke, "GIF", transparency=0)


def _animated_gif(digit: Digit, other: Digit) -> bytes:
    first, second = on_paper(digit).convert("P"), on_paper(other).convert("P")
    return encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)


def _animated_webp(digit: Digit, other: Digit) -> bytes:
    first, second = on_paper(digit).convert("RGB"), on_paper(other).convert("RGB")
    return encode(first, "WEBP", save_all=True, append_images=[second], duration=100)


def _off_centre(digit: Digit, _: Digit) -> bytes:
    canvas = Image.new("L", (900, 600), 255)
    canvas.paste(on_paper(digit, 200), (40, 330))
    return encode(canvas, "PNG")


UPLOADS: dict[str, Encoder] = {
    "inverted_28px_png": lambda d, _: encode(255 - d, "PNG"),
    "mnist_28px_jpeg": lambda d, _: encode(d, "JPEG", quality=75),
    "large_black_on_white_png": lambda d, _: encode(on_paper(d), "PNG"),
    "off_centre_on_large_canvas": _off_centre,
    "large_jpeg": lambda d, _: encode(on_paper(d), "JPEG", quality=75),
    "blue_ink_rgb_jpeg": lambda d, _: encode(
        Image.merge("RGB", (on_paper(d), on_paper(d), Image.new("L", (280, 280), 255))), "JPEG"
    ),
    "rgba_black_ink_transparent_background": lambda d, _: encode(_rgba_canvas(d, (0,) * 3), "PNG"),
    "rgba_white_ink_transparent_background": lambda d, _: encode(
        _rgba_canvas(d, (255,) * 3), "PNG"
    ),
    "la_png": lambda d, _: encode(_rgba_canvas(d, (0,) * 3).convert("LA"), "PNG"),
    "sixteen_bit_png": lambda d, _: encode(np.asarray(on_paper(d)).astype(np.uint16) * 257, "PNG"),
    "sixteen_bit_pgm": lambda d, _: encode(np.asarray(on_paper(d)).astype(np.uint16) * 257, "PPM"),
    "one_bit_png": lambda d, _: encode(on_paper(d).point(lambda v: 255 * (v > 128), "1"), "PNG"),
    "palette_gif": lambda d, _: encode(on_paper(d).convert("RGB").convert("P"), "GIF"),
    "palette_png_with_transparency": _palette_with_transparency,
    "gif_canvas_export_black_on_black_transparency": _gif_canvas_export,
    "animated_gif_first_frame": _animated_gif,
    "animated_webp_first_frame": _animated_webp,
    "tiff": lambda d, _: encode(on_paper(d), "TIFF", compression="tiff_lzw"),
    "webp": lambda d, _: encode(on_paper(d).convert("RGB"), "WEBP", quality=80),
    "bmp": lambda d, _: encode(on_paper(d).convert("RGB"), "BMP"),
    "pgm": lambda d, _: encode(on_paper(d), "PPM"),
}


@pytest.mark.parametrize("make", UPLOADS.values(), ids=UPLOADS.keys())
def test_upload_gives_the_mnist_digit(make: Encoder, digits: np.ndarray) -> None:
    others = np.roll(digits, 1, axis=0)
    assert_same_digits([make(d, o) for d, o in zip(digits, others, strict=True)], digits)


def test_uploads_decode_in_the_mode_they_claim(digits: np.ndarray) -> None:
    """Guards the cases above against Pillow quietly saving something simpler."""
    expected = {
        "rgba_black_ink_transparent_background": "RGBA",
        "la_png": "LA",
        "sixteen_bit_png": "I;16",
        "one_bit_png": "1",
        "palette_gif": "P",
        "palette_png_with_transparency": "P",
        "gif_canvas_export_black_on_black_transparency": "P",
        "sixteen_bit_pgm": "I",
        "blue_ink_rgb_jpeg": "RGB",
    }
    for name, mode in expected.items():
        img = Image.open(io.BytesIO(UPLOADS[name](digits[0], digits[1])))
        assert img.mode == mode, name
    assert Image.open(io.BytesIO(_animated_gif(digits[0], digits[1]))).n_frames == 2
    assert Image.open(io.BytesIO(_animated_webp(digits[0], digits[1]))).n_frames == 2


# Orientation tag -> the transpose that exif_transpose applies to show the image upright.
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {Image.Transpose.ROTATE_270: Image.Transpose.ROTATE_90}
INVERSE[Image.Transpose.ROTATE_90] = Image.Transpose.ROTATE_270


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_exif_orientation_is_honoured(orientation: int, fmt: str, digits: np.ndarray) -> None:
    display = ORIENTATIONS[orientation]
    uploads = []
    for digit in digits:
        stored = on_paper(digit).transpose(INVERSE.get(display, display))  # as the camera wrote it
        exif = Image.Exif()
        exif[0x0112] = orientation
        uploads.append(encode(stored, fmt, exif=exif))
    assert_same_digits(uploads, digits)


def pillow_grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


GREY_PNGS: dict[str, Callable[[Digit], bytes]] = {
    "mnist_28px": lambda d: encode(d, "PNG"),
    "mnist_28px_uncompressed": lambda d: encode(d, "PNG", compress_level=0),
    "mnist_28px_optimized": lambda d: encode(d, "PNG", optimize=True),
    "large_black_on_white": lambda d: encode(on_paper(d), "PNG"),
    "not_square": lambda d: encode(np.asarray(on_paper(d))[:, 40:200], "PNG"),
}


@pytest.mark.parametrize("make", GREY_PNGS.values(), ids=GREY_PNGS.keys())
def test_plain_grey_png_decodes_exactly_as_pillow_does(make, digits: np.ndarray) -> None:
    for digit in digits:
        upload = make(digit)
        fast = _plain_grey_png(upload, None)
        assert fast is not None  # the case really takes libspng's path
        assert fast.dtype == np.uint8
        np.testing.assert_array_equal(fast, pillow_grey(upload))


def _chunk_offset(png: bytes, kind: bytes) -> tuple[int, int]:
    """Where the data of the first `kind` chunk starts, and its length."""
    pos = 8
    while png[pos + 4 : pos + 8] != kind:
        pos += 12 + struct.unpack(">I", png[pos : pos + 4])[0]
    return pos + 8, struct.unpack(">I", png[pos : pos + 4])[0]


def test_grey_png_with_a_damaged_pixel_stream_is_refused_not_misread(digits: np.ndarray) -> None:
    # libspng, as pyspng runs it, ignores CRCs and decodes such a file to wrong pixels.
    upload = bytearray(encode(digits[0], "PNG"))
    start, length = _chunk_offset(bytes(upload), b"IDAT")
    upload[start + length // 2] ^= 0xFF
    assert _plain_grey_png(bytes(upload), None) is None
    with pytest.raises(CorruptImageError) as caught:
        to_model_input(bytes(upload))
    assert http_status(caught.value) == 422


@pytest.mark.parametrize(
    "upload",
    [
        encode(np.full((28, 28), 255, np.uint8), "PNG", transparency=255),  # tRNS
        encode(np.zeros((28, 28), np.uint8), "PNG", exif=b"Exif\x00\x00II*\x00"),  # eXIf
        encode(np.zeros((28, 28), np.uint16), "PNG"),  # 16-bit
        encode(np.zeros((28, 28, 3), np.uint8), "PNG"),  # RGB
        encode(np.zeros((2000, 10), np.uint8), "PNG"),  # longer than WORK_SIZE
    ],
    ids=["transparency", "exif", "sixteen_bit", "rgb", "large"],
)
def test_pngs_with_more_than_grey_pixels_are_left_to_pillow(upload: bytes) -> None:
    assert upload.startswith(b"\x89PNG")
    assert _plain_grey_png(upload, None) is None


def test_plain_grey_png_respects_the_pixel_limit(digits: np.ndarray) -> None:
    with pytest.raises(TooLargeError):
        to_model_input(encode(digits[0], "PNG"), max_pixels=28 * 28 - 1)


def test_decode_scales_sixteen_bit_levels_rather_than_clipping() -> None:
    levels = np.array([[0, 257, 32896, 65535]], np.uint16)
    assert decode(encode(levels, "PNG"), 100).tolist() == [[0, 1, 128, 255]]


def test_decode_reduces_large_images(digits: np.ndarray) -> None:
    grey = decode(encode(on_paper(digits[0], 3000), "PNG"))
    assert max(grey.shape) <= 1024


@pytest.mark.parametrize(
    "upload",
    [
        encode(np.full((300, 200), 255, np.uint8), "PNG"),
        encode(np.zeros((28, 28), np.uint8), "PNG"),
        encode(Image.new("RGBA", (100, 100), (0, 0, 0, 0)), "PNG"),
        # White paper photographed: texture and JPEG noise, but no ink.
        encode(
            np.clip(np.random.default_rng(0).normal(220, 4, (400, 300)), 0, 255).astype(np.uint8),
            "JPEG",
        ),
    ],
    ids=["white", "black_28px", "transparent", "noisy_paper_jpeg"],
)
def test_blank_image_is_empty(upload: bytes) -> None:
    with pytest.raises(NoInkError, match="no ink") as caught:
        to_model_input(upload)
    assert http_status(caught.value) == 422


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (b"", "empty"),
        (np.random.default_rng(0).bytes(4096), "not an image"),
        (b"this is a text file, not a digit\n", "not an image"),
        # Pillow reads it, but it is not an allowed format.
        (encode(Image.new("L", (16, 16), 255), "ICO"), "not an image"),
    ],
    ids=["zero_bytes", "random_bytes", "text", "ico"],
)
def test_rejects_what_is_not_a_supported_image(upload: bytes, message: str) -> None:
    with pytest.raises(UnsupportedMediaError, match=message) as caught:
        to_model_input(upload)
    assert http_status(caught.value) == 415


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def test_rejects_truncated_png(digits: np.ndarray) -> None:
    upload = _truncated(encode(on_paper(digits[0]), "PNG"))
    with pytest.raises(CorruptImageError, match="truncated") as caught:
        to_model_input(upload)
    assert http_status(caught.value) == 422


def test_rejects_truncated_jpeg(digits: np.ndarray) -> None:
    upload = _truncated(encode(on_paper(digits[0]), "JPEG"))
    with pytest.raises(CorruptImageError, match="truncated") as caught:
        to_model_input(upload)
    assert http_status(caught.value) == 422


def test_truncated_header_of_known_format_is_corrupt_not_unsupported(digits: np.ndarray) -> None:
    with pytest.raises(CorruptImageError) as caught:
        to_model_input(encode(digits[0], "PNG")[:20])
    assert http_status(caught.value) == 422


def test_truncation_is_not_tolerated_globally() -> None:
    # With this set, Pillow returns grey garbage for truncated files instead of raising.
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


def _png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of blank rows: megapixels that compress to kilobytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    block = 500  # rows compressed at a time; height must be a multiple
    idat = b"".join(compressor.compress(row * block) for _ in range(height // block))
    idat += compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


@pytest.mark.usefixtures("no_decoding")
def test_rejects_decompression_bomb_before_decoding() -> None:
    bomb = _png_bomb(20_000, 20_000)  # 400 megapixels
    assert len(bomb) < 100_000
    with pytest.raises(TooLargeError) as caught:
        to_model_input(bomb)
    assert http_status(caught.value) == 413


@pytest.mark.usefixtures("no_decoding")
def test_rejects_more_pixels_than_allowed_before_decoding() -> None:
    with pytest.raises(TooLargeError, match="3000×2000") as caught:
        to_model_input(_png_bomb(3000, 2000), max_pixels=5_000_000)
    assert http_status(caught.value) == 413


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
# The module turns the warning into a 413 where warnings are errors; say so here rather than
# depend on a filter some other test in the run happens to leave behind.
@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillow_bomb_warning_becomes_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # warns above 1000, fails above 2000
    with pytest.raises(TooLargeError):
        # RGB: Pillow reads it (libspng takes only small greyscale PNGs, far below the limit).
        to_model_input(encode(np.zeros((40, 40, 3), np.uint8), "PNG"), max_pixels=10_000)


def dark_on_white(digit: np.ndarray) -> np.ndarray:
    """An MNIST digit as dark ink on white paper, 56×56: not MNIST's own format."""
    return np.kron(255 - digit, np.ones((2, 2), np.uint8))


def in_mode(grey: np.ndarray, mode: str) -> Image.Image:
    """The grey levels `grey` as an image of `mode`, with the levels that mode stores."""
    if mode in ("I", "I;16", "I;16B"):
        wide = Image.fromarray(grey.astype(np.int32) * 257)  # 16-bit levels in mode I
        return wide if mode == "I" else wide.convert(mode)
    if mode == "F":
        return Image.fromarray(grey.astype(np.float32) / 255)
    image = Image.fromarray(grey)
    if mode == "LA":
        return Image.merge("LA", (image, Image.new("L", image.size, 255)))
    if mode == "PA":
        return Image.merge("LA", (image, Image.new("L", image.size, 255))).convert("PA")
    if mode == "LAB":
        zero = Image.new("L", image.size, 128)
        return Image.merge("LAB", (image, zero, zero))
    return image.convert("RGB").convert(mode) if mode in ("HSV", "YCbCr", "CMYK") else (
        image.convert(mode))  # fmt: skip


# Every mode Pillow's decoders give, with a format that can carry it (none writes HSV or PA:
# those are read from memory).
MODES = [
    *[("1", "TIFF"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("PA", None), ("RGB", "WEBP")],
    *[("RGBA", "PNG"), ("CMYK", "TIFF"), ("YCbCr", "TIFF"), ("LAB", "TIFF"), ("HSV", None)],
    *[("I", "TIFF"), ("I;16", "PNG"), ("I;16B", "TIFF"), ("F", "TIFF")],
]


@pytest.mark.parametrize(("mode", "fmt"), MODES, ids=[mode for mode, _ in MODES])
def test_every_pillow_mode_reads_as_the_same_digit(mode: str, fmt: str | None, digits) -> None:
    grey = dark_on_white(digits[0])
    if mode == "1":
        grey = np.where(grey > 127, 255, 0).astype(np.uint8)
    expected = to_model_input(encode(Image.fromarray(grey), "PNG"))
    image = in_mode(grey, mode)
    assert image.mode == mode
    if fmt is None:
        levels = np.asarray(_grey(image))
        got = to_model_input(encode(Image.fromarray(levels), "PNG"))
    else:
        upload = encode(image, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        assert Image.open(io.BytesIO(upload)).mode == mode  # the file really holds that mode
        got = to_model_input(upload)
    # Colour spaces round each level a little differently; the digit is the same.
    assert np.abs(got - expected).max() < 0.05


@pytest.mark.parametrize("levels", [(0, 255), (0, 1_000_000), (-5_000, 200), (-(2**31), 2**31 - 1)])
def test_int32_levels_of_any_range_read_as_the_same_digit(levels, digits) -> None:
    low, high = levels
    grey = dark_on_white(digits[0]).astype(np.int64)
    wide = (low + grey * ((high - low) / 255)).astype(np.int32)
    got = to_model_input(encode(Image.fromarray(wide), "TIFF"))
    expected = to_model_input(encode(Image.fromarray(dark_on_white(digits[0])), "PNG"))
    assert np.abs(got - expected).max() < 0.05


def test_float_levels_with_nan_are_read_without_it(digits) -> None:
    levels = dark_on_white(digits[0]).astype(np.float32) / 255
    levels[0, 0] = np.nan
    assert np.isfinite(to_model_input(encode(Image.fromarray(levels), "TIFF"))).all()


@pytest.mark.parametrize(
    ("size", "mode", "params", "chunk"),
    [
        ((300, 200), "RGB", {"lossless": True}, b"VP8L"),
        ((301, 199), "RGB", {"quality": 80}, b"VP8 "),
        ((64, 48), "RGBA", {"quality": 80}, b"VP8X"),  # lossy with alpha: the extended form
    ],
    ids=["lossless", "lossy", "extended"],
)
def test_webp_size_is_read_from_its_header_as_pillow_reads_it(size, mode, params, chunk) -> None:
    from app.imaging.decode import _webp_size

    upload = encode(Image.new(mode, size), "WEBP", **params)
    assert upload[12:16] == chunk
    assert _webp_size(upload) == Image.open(io.BytesIO(upload)).size == size


def test_a_costly_webp_is_refused_before_pillow_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    heavy = encode(Image.new("L", (4000, 4000), 255), "WEBP", lossless=True)

    def unexpected(*args: object, **kwargs: object) -> None:
        raise AssertionError("Image.open was called")

    monkeypatch.setattr(Image, "open", unexpected)
    with pytest.raises(TooLargeError, match=r"4000×4000 WEBP would take 244 MiB"):
        decode(heavy)


def test_a_phone_jpeg_decodes_at_the_draft_scale_its_longer_side_allows() -> None:
    rng = np.random.default_rng(3)
    for (width, height), side in (((4000, 3000), 500), ((3000, 4000), 500), ((1152, 864), 576)):
        paper = np.clip(rng.normal(220, 6, (height, width)), 0, 255).astype(np.uint8)
        paper[height // 3 : height // 2, width // 3 : width // 3 + 20] = 30  # a stroke
        grey, scale = decode_scaled(encode(paper, "JPEG", quality=90))
        assert max(grey.shape) == side
        assert scale == max(width, height) / side


def test_clean_takes_numpys_medians_from_a_histogram() -> None:
    rng = np.random.default_rng(0)
    for n in range(200):
        grey = rng.integers(0, 256, (int(rng.integers(1, 50)), int(rng.integers(1, 50))))
        grey = (grey // (1 + n % 60) * (1 + n % 60)).astype(np.uint8)  # few levels, ties
        counts = _histogram(grey)
        level = float(np.median(grey))
        assert _median(counts) == level
        distances = np.abs(np.arange(256) - level)
        order = np.argsort(distances, kind="stable")
        spread = _median(counts[order], distances[order])
        assert spread == np.median(np.abs(grey.astype(np.float32) - level))


def test_clean_skips_the_hough_transform_only_where_it_finds_no_line() -> None:
    rng = np.random.default_rng(1)
    skipped = found = 0
    for _ in range(120):
        mask = np.zeros((384, 512), np.uint8)
        length = round(RULE_LENGTH * 384)
        gap = length // 8
        # A digit's blob, specks, and sometimes a rule: whole, or dashed with gaps the
        # transform bridges or does not, at any angle.
        side = int(rng.integers(30, 300))
        top, left = int(rng.integers(0, 384 - side // 2)), int(rng.integers(0, 512 - side // 2))
        cv2.ellipse(mask, (left, top), (side // 4, side // 2), 0, 0, 360, 255, 8)
        for _ in range(int(rng.integers(0, 30))):
            mask[int(rng.integers(0, 384)), int(rng.integers(0, 512))] = 255
        if rng.random() < 0.6:
            angle = rng.uniform(-np.pi, np.pi)
            x0, y0 = rng.uniform(0, 512), rng.uniform(0, 384)
            run = int(rng.integers(length // 2, 2 * length))
            dash, hole = int(rng.integers(2, 40)), int(rng.integers(0, 2 * gap))
            for t in range(0, run, dash + hole):
                a = (int(x0 + t * np.cos(angle)), int(y0 + t * np.sin(angle)))
                b = (int(x0 + (t + dash) * np.cos(angle)), int(y0 + (t + dash) * np.sin(angle)))
                cv2.line(mask, a, b, 255, 1)
        lines = cv2.HoughLinesP(mask, 1, np.pi / 180, threshold=length // 2,
                                minLineLength=length, maxLineGap=gap)  # fmt: skip
        may = _may_hold_a_line(mask, length, gap)
        has_lines = lines is not None and len(lines) > 0
        assert may or not has_lines
        skipped += not may
        found += has_lines
    assert skipped and found  # both cases happen: small digits skip it, rules do not


def test_rule_removal_takes_no_ink_from_numbers_on_a_plain_canvas(
    mnist_test, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A line of digits spans the image's width: the whole mask's transform finds straight
    # runs along its strokes, and the band drawn round them took the strokes' thinner ends
    # wherever no rule stood clear of the strokes.
    images, labels = mnist_test
    rules = clean_module._rules
    taken: list[int] = []
    monkeypatch.setattr(clean_module, "_rules", lambda mask: _spied(rules(mask), taken))
    rng = np.random.default_rng(7)
    for _ in range(100):
        clean(make_number(images, labels, int(rng.integers(1, 11)), rng).image)
    assert len(taken) > 90  # all but the smallest images, which have no rules to look for
    assert sum(count > 0 for count in taken) <= 2


@pytest.mark.parametrize("specks", [0, 3])
def test_clean_gives_the_components_of_the_ink_it_returns(digits: np.ndarray, specks: int) -> None:
    for digit in digits[:5]:
        page = np.asarray(on_paper(digit, 300)).copy()
        for k in range(specks):  # dots far from the digit, which the cleaning drops
            page[10 + 40 * k : 13 + 40 * k, 10:13] = 0
        cleaned = clean(page)
        expected = parts_of(cleaned.ink > 0)
        assert cleaned.parts is not None
        np.testing.assert_array_equal(cleaned.parts.labels, expected.labels)
        np.testing.assert_array_equal(cleaned.parts.stats, expected.stats)
        assert not cleaned.ink[10 : 13 + 40 * specks, 10:13].any()


def _spied(found: np.ndarray, counts: list[int]) -> np.ndarray:
    counts.append(int(found.sum()))
    return found


def scanned(digit: Digit, side: int) -> np.ndarray:
    """The digit as black on white, scanned at `side` pixels a side."""
    return np.asarray(small_scan(digit, side))


def test_repeated_finds_the_factor_of_an_enlargement_by_repeated_pixels(digits) -> None:
    rng = np.random.default_rng(4)
    for digit in digits:
        side, factor = int(rng.integers(8, 20)), int(rng.integers(2, 10))
        small = scanned(digit, side)
        enlarged = np.kron(small, np.ones((factor, factor), np.uint8))
        assert _repeated(enlarged) == factor
        assert _repeated(small) == 1
        smooth = Image.fromarray(small).resize(enlarged.shape, Image.Resampling.BILINEAR)
        assert _repeated(np.asarray(smooth)) == 1
        # One pixel off its block, or a side cut short: no longer an enlargement by `factor`.
        touched = enlarged.copy()
        touched[factor + 1, factor + 1] ^= 0xFF
        assert _repeated(touched) == 1
        assert _repeated(enlarged[:-1]) != factor
    assert _repeated(np.full((64, 64), 255, np.uint8)) == 1


def test_a_pixel_enlargement_reads_as_the_scan_it_enlarges(digits) -> None:
    for digit in digits:
        small = scanned(digit, 10)
        enlarged = np.kron(small, np.ones((7, 7), np.uint8))
        own, big = clean(small), clean(enlarged)
        np.testing.assert_array_equal(own.ink, big.ink)
        assert big.scale == 7 * own.scale
        [box] = to_model_inputs([encode(enlarged, "PNG")]).boxes
        [native] = to_model_inputs([encode(small, "PNG")]).boxes
        # One ink map's box, its corners rounded to the scan's pixels or to the enlargement's.
        corners = np.cumsum(np.reshape(box, (2, 2)), axis=0)
        assert np.abs(corners - 7 * np.cumsum(np.reshape(native, (2, 2)), axis=0)).max() <= 4


def test_a_small_scan_is_read_at_a_resolution_above_its_own(digits) -> None:
    """A 10-px scan's ink is interpolated up before the noise threshold, so its strokes keep
    their partly covered pixels: the ink map is larger than the scan and has grey edges."""
    for digit in digits:
        ink = clean(scanned(digit, 10))
        assert min(ink.ink.shape) > 10 and ink.scale < 1
        edges = (ink.ink > 0) & (ink.ink < 1)
        assert edges.sum() > (ink.ink == 1).sum() / 4


def test_clean_says_whether_the_image_was_a_small_scan(digits) -> None:
    """Under MNIST's 28 px a side, as scanned or enlarged by repeating its pixels, an image is
    a low-resolution scan, judged by the model's threshold for those; at 28 px, or enlarged
    smoothly, it is not."""
    for digit in digits[:5]:
        small = scanned(digit, 12)
        assert clean(small).low_resolution
        assert clean(np.kron(small, np.ones((6, 6), np.uint8))).low_resolution
        assert not clean(scanned(digit, 28)).low_resolution
        smooth = Image.fromarray(small).resize((72, 72), Image.Resampling.BILINEAR)
        assert not clean(np.asarray(smooth)).low_resolution
        uploads = [encode(small, "PNG"), encode(scanned(digit, 40), "PNG"), encode(digit, "PNG")]
        assert to_model_inputs(uploads).low_resolution == [True, False, False]


@pytest.mark.parametrize("share", [0.05, 0.4, 0.6])
def test_components_are_labelled_as_opencvs_default_labels_them(share: float) -> None:
    # Grana's algorithm is chosen for its speed alone: it must not change a label or a box.
    mask = (np.random.default_rng(7).random((384, 512)) < share).astype(np.uint8)
    count, labels, stats = labelled(mask)
    expected, expected_labels, expected_stats, _ = cv2.connectedComponentsWithStats(mask, 8)
    assert count == expected > 100
    assert np.array_equal(labels, expected_labels)
    assert np.array_equal(stats, expected_stats)


@pytest.mark.parametrize("degrees", [13.5, 40.25, 101.75])
def test_a_shadows_edge_is_found_to_a_fraction_of_a_degree(degrees: float) -> None:
    """Found at half resolution and fitted to its edge pixels: closer than the transform's own
    one-degree steps, so a hard shadow is lit back without leaving a sliver of its edge."""
    theta = np.radians(degrees)
    ys, xs = np.mgrid[0:192, 0:256].astype(np.float64)
    rho = 128 * np.cos(theta) + 96 * np.sin(theta)  # through the image's centre
    beyond = xs * np.cos(theta) + ys * np.sin(theta) > rho
    reduced = np.where(beyond, 120, 220).astype(np.uint8)
    found = _shadow_edge(reduced)
    assert found is not None
    found_rho, found_theta = found
    assert abs(np.degrees(found_theta) - degrees) < 0.25, np.degrees(found_theta)
    assert abs(found_rho - rho) < 1.0, (found_rho, rho)


@pytest.mark.parametrize("degrees", [0.0, 33.0, 90.0, 151.0, 225.0, 300.0])
@pytest.mark.parametrize("offset", [0.0, 0.45])
def test_a_straight_shadow_always_leaves_the_border_of_two_levels(
    degrees: float, offset: float
) -> None:
    # The shadow search is skipped for images whose border is one grey level: a hard shadow on
    # noiseless paper, its edge through the middle or near a corner, must never look like one.
    theta = np.radians(degrees)
    ys, xs = np.mgrid[0:192, 0:256].astype(np.float64)
    along = (xs - 128) * np.cos(theta) + (ys - 96) * np.sin(theta)
    sheet = np.where(along > offset * np.abs(along).max(), 150, 255).astype(np.uint8)
    assert not clean_module._one_level_border(sheet)
    assert clean_module._one_level_border(np.full((192, 256), 255, np.uint8))


def test_numbers_on_a_canvas_clean_as_the_shadow_search_would_clean_them(
    mnist_test, monkeypatch: pytest.MonkeyPatch
) -> None:
    images, labels = mnist_test
    rng = np.random.default_rng(11)
    canvases = [make_number(images, labels, int(rng.integers(2, 11)), rng).image for _ in range(20)]
    skipped = [clean(canvas) for canvas in canvases]
    assert all(clean_module._one_level_border(canvas) for canvas in canvases)
    monkeypatch.setattr(clean_module, "_one_level_border", lambda grey: False)
    for canvas, fast in zip(canvases, skipped, strict=True):
        np.testing.assert_array_equal(clean(canvas).ink, fast.ink)


def test_the_imaging_keeps_numpys_blas_to_one_thread() -> None:
    # Several threads would spin between the framing's small matrix products, for nothing. In
    # a process of its own, as a decoder starts: torch, loaded later by other tests, brings
    # BLAS libraries of its own that the service never loads.
    script = (
        "import json, app.imaging, threadpoolctl; "
        "print(json.dumps([p for p in threadpoolctl.threadpool_info() if p['user_api'] == 'blas']))"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    blas = json.loads(found.stdout)
    assert blas
    assert all(pool["num_threads"] == 1 for pool in blas)
