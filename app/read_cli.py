"""Read the numbers written in image files offline, as POST /read would: `lenet5 read FILE...`."""

import argparse

from app.imaging.frame import frames_to_inputs
from app.predict_cli import add_arguments as add_predict_arguments
from app.predict_cli import each_file
from app.predictor import Predictor
from app.reading import reading, segment_upload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_predict_arguments(parser)


def main(args: argparse.Namespace) -> int:
    return each_file("read", args, reading_line)


def reading_line(predictor: Predictor, data: bytes) -> str:
    """One image's number, confidence and digit boxes, as `lenet5 read` prints them."""
    found = segment_upload(data, *predictor.limits())
    distances = predictor.run(frames_to_inputs(found.frames, predictor.spec))
    result = reading(found, distances, predictor.answer, predictor.j)
    boxes = " ".join(f"{d['digit']}@{','.join(map(str, d['box']))}" for d in result["digits"])
    rejected = f"  (rejected: {result['reason']})" if result["rejected"] else ""
    return f"{result['text']}{rejected}  confidence {result['confidence']:.4f}  {boxes}"
