"""Read digits from image files offline, as the service would: `lenet5 predict FILE...`."""

import argparse
import sys
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
    settings = Settings()
    try:
        predictor = Predictor.load(
            args.model or settings.model_path,
            threads=settings.threads,
            max_pixels=settings.max_image_pixels,
        )
    except ModelError as exc:
        print(f"lenet5 predict: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            result = predictor.predict(path.read_bytes())
        except (OSError, RequestError) as exc:
            print(f"{path}: error: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            failed += 1
            continue
        distances = " ".join(f"{d}:{v:.3f}" for d, v in result["distances"].items())
        rejected = "  (rejected: not confidently a digit)" if result["rejected"] else ""
        print(f"{path}: {result['digit']}{rejected}  distances {distances}")
    return 1 if failed else 0
