"""Read the numbers written in image files offline, as POST /read would: `lenet5 read FILE...`."""

import argparse
import sys

from app.errors import RequestError
from app.imaging.frame import frames_to_inputs
from app.predict_cli import add_arguments as add_predict_arguments
from app.predictor import ModelError, Predictor
from app.reading import reading, segment_upload
from app.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_predict_arguments(parser)


def main(args: argparse.Namespace) -> int:
    settings = Settings()
    try:
        predictor = Predictor.load(
            args.model or settings.model_path,
            threads=settings.threads,
            max_pixels=settings.max_image_pixels,
        )
    except ModelError as exc:
        print(f"lenet5 read: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            found = segment_upload(path.read_bytes(), *predictor.limits())
        except (OSError, RequestError) as exc:
            print(f"{path}: error: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            failed += 1
            continue
        distances = predictor.run(frames_to_inputs(found.frames, predictor.spec))
        result = reading(found, distances, predictor.answer, predictor.j)
        boxes = " ".join(f"{d['digit']}@{','.join(map(str, d['box']))}" for d in result["digits"])
        rejected = f"  (rejected: {result['reason']})" if result["rejected"] else ""
        print(f"{path}: {result['text']}{rejected}  confidence {result['confidence']:.4f}  {boxes}")
    return 1 if failed else 0
