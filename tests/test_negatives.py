"""The synthetic non-digits: MNIST's format and framing, every kind, determinism, errors."""

from collections.abc import Sequence

import numpy as np
import pytest

from app.imaging import Ink, read_digit, to_model_inputs
from app.imaging.locate import digit
from training import pieces
from training.mnist import prepare
from training.negatives import KINDS, MISSEGMENTATIONS, SHAPES, make_negatives, normalise_to_mnist

SAMPLE = 2000
# Every kind but ``inverted`` is framed like MNIST; that one is a whole inverted frame.
FRAMED = tuple(kind for kind in KINDS if kind != "inverted")


@pytest.fixture(scope="module")
def mnist(mnist_train) -> tuple[np.ndarray, np.ndarray]:
    digits, labels = mnist_train
    return digits[:SAMPLE], labels[:SAMPLE]


def _make(
    mnist: tuple[np.ndarray, np.ndarray], n: int, seed: int, kinds: Sequence[str] = KINDS
) -> tuple[np.ndarray, np.ndarray]:
    return make_negatives(*mnist, n, np.random.default_rng(seed), kinds=kinds)


def _centre_of_mass(images: np.ndarray) -> np.ndarray:
    mass = images.astype(np.float64)
    index = np.arange(images.shape[-1])
    total = mass.sum(axis=(1, 2))
    rows = mass.sum(axis=2) @ index / total
    cols = mass.sum(axis=1) @ index / total
    return np.stack([rows, cols], axis=1)


def _ink_extent(images: np.ndarray) -> np.ndarray:
    """Longer side of each image's ink bounding box, in pixels."""
    sides = []
    for axis in (1, 2):
        inked = np.asarray(images.any(axis=axis))
        sides.append(inked.shape[1] - inked[:, ::-1].argmax(axis=1) - inked.argmax(axis=1))
    return np.maximum(*sides)


def test_kinds_are_the_shapes_then_the_missegmentations_in_order():
    shapes = ("shuffled", "rotated", "overlap", "scribble", "blob", "letter", "inverted", "noise")
    pieces = ("half", "neighbour", "glued", "stroke", "triple", "segmenter")
    assert (shapes, pieces) == (SHAPES, MISSEGMENTATIONS)
    assert shapes + pieces == KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_makes_uint8_28x28_images_none_blank(mnist, kind):
    images, kind_index = _make(mnist, 40, seed=1, kinds=[kind])

    assert images.shape == (40, 28, 28)
    assert images.dtype == np.uint8
    assert kind_index.dtype == np.int64
    assert (kind_index == KINDS.index(kind)).all()
    ink = images.reshape(40, -1)
    assert (ink.max(axis=1) > 0).all(), f"{kind} made a blank image"
    assert (ink.min(axis=1) < 255).all(), f"{kind} made a saturated image"


@pytest.mark.parametrize("kind", FRAMED)
def test_framed_kinds_fill_a_20px_box_centred_by_mass_like_mnist(mnist, kind):
    images, _ = _make(mnist, 60, seed=2, kinds=[kind])

    extent = _ink_extent(images > 0)
    assert ((extent >= 18) & (extent <= 20)).all(), f"{kind} ink extents {sorted(set(extent))}"
    offset = np.abs(_centre_of_mass(images) - 14.0)
    # MNIST's own digits sit within 0.5 px; a lopsided shape is held inside the frame instead.
    assert np.median(offset) <= 0.5
    assert offset.max() <= 4.0


def test_mnist_itself_passes_the_framing_check(mnist):
    digits, _ = mnist
    assert np.abs(_centre_of_mass(digits[:200]) - 14.0).max() <= 0.5
    assert (_ink_extent(digits[:200] > 0) <= 20).all()


def test_inverted_is_a_real_digit_turned_dark_on_white(mnist):
    digits, _ = mnist
    images, _ = _make(mnist, 20, seed=3, kinds=["inverted"])

    originals = {bytes(d) for d in digits}
    assert all(bytes(255 - image) in originals for image in images)
    assert (images[:, 0, :] == 255).all()


def test_make_negatives_is_deterministic_for_a_seed(mnist):
    first = _make(mnist, 200, seed=4)
    again = _make(mnist, 200, seed=4)
    other = _make(mnist, 200, seed=5)

    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_unknown_kind_raises_value_error_naming_it(mnist):
    with pytest.raises(ValueError, match="squiggle"):
        _make(mnist, 5, seed=0, kinds=["blob", "squiggle"])


def test_a_bare_string_of_kinds_is_refused_rather_than_split_into_letters(mnist):
    with pytest.raises(ValueError, match="sequence"):
        _make(mnist, 5, seed=0, kinds="blob")


def test_digits_not_in_mnist_format_are_refused():
    floats = np.zeros((3, 28, 28), dtype=np.float32)
    with pytest.raises(ValueError, match="uint8"):
        make_negatives(floats, np.zeros(3), 1, np.random.default_rng(0))


def test_kind_indices_match_the_requested_kinds_and_their_images(mnist):
    images, kind_index = _make(mnist, 100, seed=6, kinds=["inverted", "noise"])
    inverted, noise = KINDS.index("inverted"), KINDS.index("noise")

    assert kind_index.shape == (100,)
    assert set(kind_index.tolist()) == {inverted, noise}
    white_border = (images[:, 0, :] == 255).all(axis=1)
    np.testing.assert_array_equal(white_border, kind_index == inverted)


def test_kinds_are_drawn_uniformly(mnist):
    _, kind_index = _make(mnist, 200 * len(KINDS), seed=7)

    counts = np.bincount(kind_index, minlength=len(KINDS))
    assert ((counts > 150) & (counts < 250)).all(), counts


def test_rotated_refuses_when_only_digits_that_survive_turning_remain(mnist):
    digits, labels = mnist
    round_ones = np.isin(labels, [0, 1, 8])
    with pytest.raises(ValueError, match="label outside"):
        make_negatives(
            digits[round_ones], labels[round_ones], 5, np.random.default_rng(0), kinds=["rotated"]
        )


def test_normalise_to_mnist_scales_the_longer_side_to_20_and_centres_the_mass():
    canvas = np.zeros((100, 120), dtype=np.uint8)
    canvas[10:90, 70:100] = 255  # an 80 × 30 bar far off centre

    framed = normalise_to_mnist(canvas)

    assert framed.shape == (28, 28)
    assert framed.dtype == np.uint8
    rows, cols = np.nonzero(framed)
    assert rows.max() - rows.min() + 1 == 20
    assert cols.max() - cols.min() + 1 in (7, 8)
    np.testing.assert_allclose(_centre_of_mass(framed[None])[0], 14.0, atol=0.5)


def test_normalise_to_mnist_leaves_blank_input_blank():
    assert not normalise_to_mnist(np.zeros((40, 40), dtype=np.uint8)).any()


def test_normalise_to_mnist_frames_as_the_service_locates_and_frames_ink(mnist):
    # Two-level ink (0 or 255) at several sizes, given to the service as its cleaned ink map:
    # any difference would be a second framing, or locate dropping part of a digit.
    rng = np.random.default_rng(5)
    digits = mnist[0][rng.choice(len(mnist[0]), 200)]
    inks = [np.kron(digit, np.ones((k, k), np.uint8)) for digit, k in
            zip(digits, rng.integers(1, 6, len(digits)), strict=True)]  # fmt: skip
    inks = [np.where(ink > 127, 255, 0).astype(np.uint8) for ink in inks]
    whole = 0
    for ink in inks:
        located, _ = digit(ink / 255)
        if np.count_nonzero(located) < np.count_nonzero(ink):
            continue  # locate left a speck out: the service frames less than the whole image
        whole += 1
        frame, _ = read_digit(Ink(ink / 255, 1.0))
        assert np.array_equal(normalise_to_mnist(ink), frame)
    assert whole >= 0.9 * len(inks)


def test_negatives_reach_the_model_as_training_saw_them(mnist, encode):
    # The service recognises a framed negative as MNIST-format and gives the network exactly
    # the input training gave it (training.mnist.prepare); only ink pushed against the frame's
    # edge, whose centre of mass cannot be centred, is reframed.
    images, _ = _make(mnist, 300, 9, FRAMED)
    inputs, errors, *_ = to_model_inputs([encode(image) for image in images])
    assert not errors
    same = [np.array_equal(got, want) for got, want in zip(inputs, prepare(images), strict=True)]
    assert np.mean(same) >= 0.98


def test_generator_imports_neither_torch_nor_matplotlib(fresh_python):
    script = (
        "import sys, numpy as np\n"
        "from training.negatives import make_negatives\n"
        "digits = np.zeros((10, 28, 28), np.uint8); digits[:, 8:20, 10:18] = 255\n"
        # Bars can be glued, not halved: the kinds that cut a digit refuse them.
        "kinds = ['shuffled', 'scribble', 'blob', 'letter', 'noise', 'glued', 'triple']\n"
        "make_negatives(digits, np.arange(10), 50, np.random.default_rng(0), kinds=kinds)\n"
        "print(sorted({'torch', 'matplotlib'} & set(sys.modules)))\n"
    )
    result = fresh_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _extents(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height and width of each image's ink box."""
    sides = []
    for axis in (2, 1):
        inked = np.asarray(images.any(axis=axis))
        sides.append(inked.shape[1] - inked[:, ::-1].argmax(axis=1) - inked.argmax(axis=1))
    return sides[0], sides[1]


@pytest.mark.parametrize("kind", MISSEGMENTATIONS)
def test_each_missegmentation_kind_is_deterministic_for_a_seed(mnist, kind):
    first, _ = _make(mnist, 30, seed=11, kinds=[kind])
    again, _ = _make(mnist, 30, seed=11, kinds=[kind])
    np.testing.assert_array_equal(first, again)


def test_a_half_digit_is_narrower_than_the_digits_it_is_cut_from(mnist):
    digits, _ = mnist
    halves, _ = _make(mnist, 300, seed=12, kinds=["half"])
    height, width = _extents(halves > 0)
    digit_height, digit_width = _extents(digits[:300] > 0)
    # Framed to 20 px on the longer side, a half is nearly always upright and thinner than a
    # whole digit (the half of a flat 2 or 7 can lie down).
    assert (height == 20).mean() > 0.9
    assert np.median(width / height) < 0.75 * np.median(digit_width / digit_height)


def test_cutting_pieces_from_bars_alone_gives_up_with_value_error():
    bars = np.zeros((10, 28, 28), np.uint8)
    bars[:, 4:24, 12:15] = 255
    with pytest.raises(ValueError, match="not a digit"):
        make_negatives(bars, np.arange(10), 3, np.random.default_rng(0), kinds=["half"])


def test_pieces_that_are_upright_bars_are_not_made(mnist):
    # A bar reads as a 1: upright, its ink spreads little across its axis. Framing blurs the
    # ink a little, so a framed piece near the bound may fall just under it.
    images, _ = _make(mnist, 300, seed=13, kinds=["half", "stroke"])
    spread_enough = [pieces._not_a_bar(image.astype(np.float32) / 255) for image in images]
    assert np.mean(spread_enough) >= 0.97
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 12:15] = 1
    assert not pieces._not_a_bar(bar)


def test_glued_and_triple_pieces_are_wider_than_one_digit(mnist):
    digits, _ = mnist
    _, digit_width = _extents(digits[:300] > 0)
    for kind, factor in (("glued", 1.3), ("triple", 2.0)):
        images, _ = _make(mnist, 200, seed=14, kinds=[kind])
        height, width = _extents(images > 0)
        assert (width == 20).mean() > 0.9, kind
        # Framed to 20 px wide, the digits inside are squeezed: the ink is shorter than wide.
        assert np.median(width / height) > factor * np.median(digit_width / 20), kind


def test_pieces_are_framed_as_the_service_frames_a_piece(mnist):
    # Re-framing a framed piece with the service's framing changes nothing but rounding.
    images, _ = _make(mnist, 100, seed=15, kinds=list(MISSEGMENTATIONS))
    again = np.stack([normalise_to_mnist(image) for image in images])
    assert np.abs(again.astype(int) - images).max() <= 64
    assert np.mean(np.abs(again.astype(int) - images)) < 2
