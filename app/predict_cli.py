"""Read digits from image files offline, as the service would: `lenet5 predict FILE...`."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from app.errors import RequestError
from app.predictor import ModelError, Predictor
from app.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="image files")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="ONNX model file (default: LENET5_MODEL_PATH, else the shipped model)",
    )


def main(args: argparse.Namespace) -> int:
    return each_file("predict", args, prediction_line)


def prediction_line(predictor: Predictor, data: bytes) -> str:
    """One image's digit and distances, as `lenet5 predict` prints them."""
    result = predictor.predict(data)
    distances = " ".join(f"{d}:{v:.3f}" for d, v in result["distances"].items())
    rejected = "  (rejected: not confidently a digit)" if result["rejected"] else ""
    return f"{result['digit']}{rejected}  distances {distances}"


def each_file(
    command: str, args: argparse.Namespace, line: Callable[[Predictor, bytes], str]
) -> int:
    """`lenet5 COMMAND FILE...`: load the model, then print `line` of each file, or its error
    naming the file; 1 if any file failed, 2 if the model could not be loaded."""
    settings = Settings()
    try:
        predictor = Predictor.load(
            args.model or settings.model_path,
            threads=settings.threads,
            max_pixels=settings.max_image_pixels,
        )
    except ModelError as exc:
        print(f"lenet5 {command}: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            text = line(predictor, path.read_bytes())
        except (OSError, RequestError) as exc:
            print(f"{path}: error: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: {text}")
    return 1 if failed else 0
