"""Why clean uses OpenCV: its operations on a photo's working image, timed in OpenCV, in
scikit-image and in Pillow (where Pillow has the operation), one thread, median of repeats.

    .venv/bin/pip install scikit-image   # not a dependency of the project: for this only
    flock /tmp/lenet5-bench.lock .venv/bin/python bench/clean_libraries.py [--repeat 15]

The image is a 1-MP photo (training/photos.py, "everything at once") of an MNIST test digit,
grey, at clean's working size (512 px) and its reduced size (256 px), as clean sees them.
"""

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np
from PIL import Image, ImageFilter

from app.imaging.clean import BACKGROUND_KERNEL, POLARITY_KERNEL
from training import photos
from training.mnist import read_idx

MNIST = Path(os.environ.get("LENET5_TEST_DATA_DIR", "../shared/data/mnist"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    from skimage import filters, measure, morphology, transform

    images = read_idx(MNIST / "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
    labels = read_idx(MNIST / "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte")
    upload = photos.digit_photos(images[:1], labels[:1], "everything at once", seed=3)[0][0]
    photo = np.asarray(Image.open(io.BytesIO(upload)).convert("L"))
    photo = cv2.resize(photo, (1155, 866), interpolation=cv2.INTER_CUBIC)  # 1 MP
    work = cv2.resize(photo, (512, 384), interpolation=cv2.INTER_AREA)
    small = cv2.resize(work, (256, 192), interpolation=cv2.INTER_AREA)
    closing = round(BACKGROUND_KERNEL * 256) | 1
    median = round(POLARITY_KERNEL * 256) | 1
    mask = work < 128
    rect = np.ones((closing, closing), bool)
    cases: dict[str, dict[str, Callable[[], object]]] = {
        "reduce 1 MP to 512 px (area)": {
            "OpenCV": lambda: cv2.resize(photo, (512, 384), interpolation=cv2.INTER_AREA),
            "scikit-image": lambda: transform.resize(photo, (384, 512), anti_aliasing=True),
            "Pillow": lambda: Image.fromarray(photo).resize((512, 384), Image.Resampling.BOX),
        },
        f"grey closing {closing}×{closing} at 256 px": {
            "OpenCV": lambda: cv2.morphologyEx(
                small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (closing,) * 2)
            ),
            "scikit-image": lambda: morphology.closing(small, rect),
            "Pillow": lambda: (
                Image.fromarray(small)
                .filter(ImageFilter.MaxFilter(closing))
                .filter(ImageFilter.MinFilter(closing))
            ),
        },
        f"median filter {median}×{median} at 256 px": {
            "OpenCV": lambda: cv2.medianBlur(small, median),
            "scikit-image": lambda: filters.median(small, np.ones((median, median), bool)),
            "Pillow": lambda: Image.fromarray(small).filter(ImageFilter.MedianFilter(median)),
        },
        "Otsu threshold at 512 px": {
            "OpenCV": lambda: cv2.threshold(work, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU),
            "scikit-image": lambda: filters.threshold_otsu(work),
        },
        "connected components + boxes at 512 px": {
            "OpenCV": lambda: cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8),
            "scikit-image": lambda: [r.bbox for r in measure.regionprops(measure.label(mask))],
        },
    }
    print(
        f"{'operation':42} "
        + " ".join(f"{lib:>13}" for lib in ("OpenCV", "scikit-image", "Pillow"))
    )
    for name, libraries in cases.items():
        cells = []
        for lib in ("OpenCV", "scikit-image", "Pillow"):
            run = libraries.get(lib)
            cells.append(f"{_median_ms(run, args.repeat):10.2f} ms" if run else f"{'—':>13}")
        print(f"{name:42} " + " ".join(cells))


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


if __name__ == "__main__":
    main()
