"""Where a photo's time goes: each stage of the imaging pipeline (decode → clean → locate →
frame → model) on a 1-MP and a 12-MP phone JPEG of one digit, and the stages of /read (decode →
clean → segment → frame the pieces → model) on a 6-digit number drawn on a canvas and
photographed at 1 MP; median milliseconds in this process, one thread, and each stage's
output size.

    flock /tmp/lenet5-bench.lock .venv/bin/python bench/imaging_stages.py [--photos 8] [--repeat 15]

The inputs are bench/speed_inputs.py's, made from MNIST test digits (LENET5_TEST_DATA_DIR,
else ../shared/data/mnist); --out writes the table as JSON too.
"""

import argparse
import gzip
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import speed_inputs  # bench/, beside this script

from app.imaging import to_model_inputs
from app.imaging.clean import clean
from app.imaging.decode import decode_scaled
from app.imaging.frame import frame_ink, frames_to_inputs
from app.imaging.locate import digit, labelled
from app.predictor import Predictor
from app.reading import frame_pieces
from app.reading.segment import candidates
from app.settings import shipped_model

REPO = Path(__file__).resolve().parent.parent

DATA = Path(os.environ.get("LENET5_TEST_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))


def mnist_test(count: int) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(DATA / "t10k-images-idx3-ubyte.gz") as f:
        f.read(16)
        images = np.frombuffer(f.read(count * 784), np.uint8).reshape(count, 28, 28)
    with gzip.open(DATA / "t10k-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = np.frombuffer(f.read(count), np.uint8)
    return images, labels


def median_ms(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, result


def size(a: np.ndarray) -> str:
    return "×".join(map(str, a.shape[::-1])) if a.ndim == 2 else f"{a.shape[0]} × {a.shape[-1]}²"


def photo_stages(data: bytes, predictor: Predictor, repeat: int) -> dict[str, tuple[float, str]]:
    stages: dict[str, tuple[float, str]] = {}
    ms, (grey, scale) = median_ms(lambda: decode_scaled(data, *predictor.limits()[1:]), repeat)
    stages["decode"] = ms, size(grey)
    ms, ink = median_ms(lambda: clean(grey, scale), repeat)
    stages["clean"] = ms, size(ink.ink)
    ms, (alone, _) = median_ms(lambda: digit(ink.ink), repeat)
    stages["locate"] = ms, size(alone)
    ms, frame = median_ms(lambda: frame_ink(alone, predictor.spec), repeat)
    stages["frame"] = ms, size(frame)
    x = frames_to_inputs([frame], predictor.spec)
    ms, _ = median_ms(lambda: predictor.run(x), repeat)
    stages["model"] = ms, size(x)
    return stages


def read_stages(data: bytes, predictor: Predictor, repeat: int) -> dict[str, tuple[float, str]]:
    stages: dict[str, tuple[float, str]] = {}
    ms, (grey, scale) = median_ms(lambda: decode_scaled(data, *predictor.limits()[1:]), repeat)
    stages["decode"] = ms, size(grey)
    ms, ink = median_ms(lambda: clean(grey, scale), repeat)
    stages["clean"] = ms, size(ink.ink)
    ms, found = median_ms(lambda: candidates(ink.ink), repeat)
    stages["segment"] = ms, f"{len(found.primitives)} primitives, {len(found.pieces)} pieces"
    ms, frames = median_ms(lambda: frame_pieces(ink.ink, found.pieces, predictor.spec), repeat)
    stages["frame"] = ms, f"{len(frames)} × 28²"
    x = frames_to_inputs(frames, predictor.spec)
    ms, _ = median_ms(lambda: predictor.run(x), repeat)
    stages["model"] = ms, size(x)
    return stages


def cpu_ms(fn: Callable[[], Any], repeat: int) -> float:
    """Mean CPU milliseconds of this process per call, every thread counted."""
    fn()
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat * 1e3


def opencv_settings(photos: list[bytes], repeat: int) -> dict[str, float]:
    """The two OpenCV choices the pipeline makes, in CPU milliseconds on the 1-MP photos:
    the whole pipeline with one OpenCV thread (the service's) and with OpenCV's own pool;
    connected components with stats of the photos' ink by OpenCV's default algorithm and by
    app.imaging.locate.labelled's."""

    def pipeline() -> None:
        for data in photos:
            to_model_inputs([data])

    masks = [(clean(*decode_scaled(data)).ink > 0).astype(np.uint8) for data in photos]
    figures = {"pipeline_one_opencv_thread_ms": cpu_ms(pipeline, repeat) / len(photos)}
    cv2.setNumThreads(os.cpu_count() or 1)
    threads = cv2.getNumThreads()
    figures[f"pipeline_{threads}_opencv_threads_ms"] = cpu_ms(pipeline, repeat) / len(photos)
    cv2.setNumThreads(1)
    default = [cpu_ms(lambda m=m: cv2.connectedComponentsWithStats(m, connectivity=8), repeat)
               for m in masks]  # fmt: skip
    grana = [cpu_ms(lambda m=m: labelled(m), repeat) for m in masks]
    figures["components_default_ms"] = statistics.median(default)
    figures["components_labelled_ms"] = statistics.median(grana)
    return {name: round(ms, 3) for name, ms in figures.items()}


def merged(runs: list[dict[str, tuple[float, str]]]) -> dict[str, dict[str, Any]]:
    """Each stage's median over the inputs, and the first input's sizes."""
    return {
        stage: {"ms": round(statistics.median(run[stage][0] for run in runs), 3),
                "size": runs[0][stage][1]}
        for stage in runs[0]
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=8, help="distinct inputs of each kind")
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per stage and input")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "stages.json")
    args = parser.parse_args()
    predictor = Predictor.load(shipped_model(), threads=1)
    images, labels = mnist_test(1000)
    inputs: dict[str, list[bytes]] = {
        "1-MP photo": [speed_inputs.digit_photo(images[i], int(labels[i]), speed_inputs.ONE_MP,
                                                i).data for i in range(args.photos)],
        "12-MP photo": [speed_inputs.digit_photo(images[i], int(labels[i]),
                                                 speed_inputs.TWELVE_MP, i).data
                        for i in range(args.photos)],
        "6-digit canvas": [speed_inputs.number_canvas(images, labels, i).data
                           for i in range(args.photos)],
        "6-digit 1-MP photo": [speed_inputs.number_photo(images, labels, i).data
                               for i in range(args.photos)],
    }  # fmt: skip
    table: dict[str, Any] = {}
    for name, uploads in inputs.items():
        stages = photo_stages if "digit" not in name else read_stages
        table[name] = merged([stages(data, predictor, args.repeat) for data in uploads])
        table[name]["total"] = {"ms": round(sum(s["ms"] for s in table[name].values()), 3)}
        table[name]["bytes"] = {"median": int(statistics.median(map(len, uploads)))}
    for name, stages in table.items():
        print(f"\n{name} ({stages['bytes']['median'] / 1e6:.2f} MB median upload)")
        print("| stage | median ms | size after |")
        print("|---|---:|---|")
        for stage, row in stages.items():
            if stage != "bytes":
                print(f"| {stage} | {row['ms']:.2f} | {row.get('size', '')} |")
    settings = opencv_settings(inputs["1-MP photo"], args.repeat)
    print("\nOpenCV's settings, CPU ms per 1-MP photo (median over the photos for components):")
    for name, ms in settings.items():
        print(f"  {name}: {ms:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"stages": table, "opencv_settings": settings, "load_avg_1min": os.getloadavg()[0],
              "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
