"""Photographed digits by condition, read by the service's pipeline: training/photos.py's
renderings of MNIST test digits, photos of sheets without a digit, and scikit-learn's UCI
digits (other writers, scanned at 8×8, upscaled) for measuring only.

    .venv/bin/python bench/photos.py [--per-condition 150] [--non-digits 700] [--drawings 2000]
        [--code /path/to/other/checkout]

Last, what worked before must still: MNIST test digits as 28×28 PNGs, and drawn large (280×280
black on white, and off-centre on a 900×600 canvas).

--code reads with another checkout's app.imaging (main's, for the before column); the photos
always come from this checkout's training/photos.py, so both read the very same bytes.
"""

import argparse
import importlib.util
import io
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    photos = _load("photos_generator", HERE / "training" / "photos.py")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-condition", type=int, default=150)
    parser.add_argument("--non-digits", type=int, default=700)
    parser.add_argument("--drawings", type=int, default=2000, help="MNIST test digits drawn large")
    parser.add_argument("--size", type=photos.size_of, default=None,
                        help="photos' WIDTHxHEIGHT (default training.photos.SIZE)")  # fmt: skip
    parser.add_argument("--code", type=Path, default=HERE)
    parser.add_argument("--model", type=Path, default=HERE / "model" / "lenet5.onnx")
    parser.add_argument("--mnist", type=Path, default=HERE.parent.parent / "shared/data/mnist")
    args = parser.parse_args()
    photos.SIZE = args.size or photos.SIZE
    sys.path.insert(0, str(args.code))
    from app.errors import NoInkError
    from app.predictor import Predictor
    from training.mnist import read_idx

    predictor = Predictor.load(args.model)
    images = read_idx(args.mnist / "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
    labels = read_idx(args.mnist / "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte")
    rng = np.random.default_rng(12)
    print(f"pipeline of {args.code}, photos of {photos.SIZE[0]}×{photos.SIZE[1]}")
    print(f"{'condition':32} {'right':>7} {'right&kept':>10} {'rejected':>8} {'no ink':>7}")
    totals = np.zeros(4)
    start = time.perf_counter()
    for condition in photos.CONDITIONS:
        pick = rng.choice(len(images), args.per_condition, replace=False)
        uploads, truth = photos.digit_photos(images[pick], labels[pick], condition, seed=1)
        row = _score(predictor, uploads, truth, NoInkError)
        totals += row * len(uploads)
        print(f"{condition:32} " + _row(row))
    print(
        f"{'all one-digit photos':32} "
        + _row(totals / (len(photos.CONDITIONS) * args.per_condition))
    )
    uploads = photos.non_digit_photos(args.non_digits, seed=1)
    results = predictor.predict_many(uploads)
    refused = [
        isinstance(r, NoInkError) or (isinstance(r, dict) and r["rejected"]) for r in results
    ]
    kinds = photos.NON_DIGITS
    print("\nnon-digit photos refused (rejected or no ink)")
    for k, kind in enumerate(kinds):
        mine = refused[k :: len(kinds)]
        print(f"  {kind:30} {100 * np.mean(mine):6.1f}%")
    to_refuse = [r for i, r in enumerate(refused) if kinds[i % len(kinds)] != "look-alike"]
    print(f"  {'all but look-alikes':30} {100 * np.mean(to_refuse):6.1f}%")
    from sklearn.datasets import load_digits

    uci = load_digits()
    uploads = [_uci_png(image) for image in uci.images]
    row = _score(predictor, uploads, uci.target, NoInkError)
    print(f"\n{'UCI 8×8 digits, ×8 nearest':32} " + _row(row) + f"   ({len(uploads)} digits)")
    # What worked before photos must still: MNIST's own frames, and digits drawn large.
    print()
    pick = np.random.default_rng(13).choice(len(images), args.drawings, replace=False)
    for name, draw in (("MNIST test PNGs, 28×28", _png), ("drawn large, 280×280", _drawn),
                       ("drawn large, off-centre 900×600", _off_centre)):  # fmt: skip
        uploads = [draw(image) for image in images[pick]]
        row = _score(predictor, uploads, labels[pick], NoInkError)
        print(f"{name:32} " + _row(row) + f"   ({len(uploads)} digits)")
    print(f"\n{time.perf_counter() - start:.0f} s")


def _score(predictor, uploads, truth, no_ink) -> np.ndarray:
    results = predictor.predict_many(uploads)
    right = kept = rejected = blank = 0
    for result, label in zip(results, truth, strict=True):
        if isinstance(result, dict):
            ok = result["digit"] == int(label)
            right += ok
            kept += ok and not result["rejected"]
            rejected += result["rejected"]
        else:
            blank += isinstance(result, no_ink)
    return np.array([right, kept, rejected, blank]) / len(uploads)


def _row(row: np.ndarray) -> str:
    return " ".join(f"{100 * v:{w}.1f}%" for v, w in zip(row, (6, 9, 7, 6), strict=True))


def _uci_png(image: np.ndarray) -> bytes:
    from PIL import Image

    levels = (255 - image * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(levels).resize((64, 64), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def _on_paper(image: np.ndarray, side: int):
    from PIL import Image

    return Image.fromarray(255 - image).resize((side, side), Image.Resampling.BILINEAR)


def _drawn(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _on_paper(image, 280).save(buffer, "PNG")
    return buffer.getvalue()


def _off_centre(image: np.ndarray) -> bytes:
    from PIL import Image

    canvas = Image.new("L", (900, 600), 255)
    canvas.paste(_on_paper(image, 200), (40, 330))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
