"""The feedback loop, measured: a writing style the shipped model reads badly, corrected
through the HTTP API, retrained on, and read again.

    python bench/feedback_loop.py post    --url http://127.0.0.1:8000   # 1,000 corrections
    python bench/feedback_loop.py measure --url http://127.0.0.1:8000 --label before
    ... make retrain, then POST /model/reload ...
    python bench/feedback_loop.py measure --url http://127.0.0.1:8000 --label after

The style: MNIST test digits as a low-resolution scanner sees them, each digit reduced to 8×8,
9×9 or 10×10 pixels (box filter) and enlarged again with nearest-neighbour by 5–8×, blocky
like a fax or a cheap camera. `post` sends 1,000 of them (each first read by POST /predict,
as a user would see its answer) to POST /feedback with the true label; `measure` reads 1,000
OTHER digits in the same style (different MNIST test digits) through POST /predict and counts
those misread or rejected, then reads the 10,000 MNIST test digits as they are through
POST /predict/batch: the error on all of them, and on the 8,000 that neither set was made from.
Results go to bench/results/feedback_loop.json, one entry per --label. Needs the MNIST test
files (LENET5_TEST_DATA_DIR, else ../shared/data/mnist).
"""

import argparse
import gzip
import io
import json
import os
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("LENET5_TEST_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
RESULTS = REPO / "bench" / "results" / "feedback_loop.json"
SEED = 20_261_202
COUNT = 1000
SOURCE = "lowres-scan"


def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(DATA / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read()[16:], np.uint8).reshape(-1, 28, 28)
    with gzip.open(DATA / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read()[8:], np.uint8).astype(int)
    return images, labels


def low_resolution_scan(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """The digit scanned at 8–10 pixels a side and enlarged blockily, as a PNG."""
    side = int(rng.integers(8, 11))
    enlarged = side * int(rng.integers(5, 9))
    image = Image.fromarray(digit).resize((side, side), Image.Resampling.BOX)
    image = image.resize((enlarged, enlarged), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def order() -> np.ndarray:
    """The MNIST test digits in the loop's order: the posted set, then the other set, then the
    digits neither was made from."""
    return np.random.default_rng(SEED).permutation(10_000)


def style_set(which: str, count: int) -> list[tuple[bytes, int, int]]:
    """(png, label, MNIST test index): 'posted' and 'other' come from disjoint test digits."""
    images, labels = mnist_test()
    chosen = order()[:count] if which == "posted" else order()[count : 2 * count]
    rng = np.random.default_rng([SEED, 0 if which == "posted" else 1])
    return [(low_resolution_scan(images[i], rng), int(labels[i]), int(i)) for i in chosen]


def read(client: httpx.Client, png: bytes) -> dict:
    answer = client.post("/predict", content=png, headers={"Content-Type": "image/png"})
    answer.raise_for_status()
    return answer.json()


def post(client: httpx.Client, count: int) -> dict:
    stored = duplicates = wrong = 0
    for png, label, index in style_set("posted", count):
        said = read(client, png)
        wrong += said["rejected"] or said["digit"] != label
        answer = client.post(
            "/feedback",
            files={"file": (f"test-{index}.png", png, "image/png")},
            data={
                "label": str(label),
                "source": SOURCE,
                "version": said["version"],
                "predicted": "none" if said["rejected"] else str(said["digit"]),
            },
        )
        if answer.status_code not in (200, 201):
            raise SystemExit(f"POST /feedback answered {answer.status_code}: {answer.text}")
        stored += answer.status_code == 201
        duplicates += answer.status_code == 200
    return {
        "posted": count,
        "stored": stored,
        "duplicates": duplicates,
        "wrong_or_rejected_when_posted": wrong / count,
    }


def measure(client: httpx.Client, count: int) -> dict:
    misread = rejected = 0
    version = ""
    for png, label, _ in style_set("other", count):
        said = read(client, png)
        version = said["version"]
        rejected += said["rejected"]
        misread += not said["rejected"] and said["digit"] != label
    return {
        "model_version": version,
        "images": count,
        "error": (misread + rejected) / count,
        "misread": misread,
        "rejected": rejected,
    } | mnist_errors(client, count)


def mnist_errors(client: httpx.Client, count: int) -> dict:
    """MNIST test error (misread, as `lenet5 evaluate` counts it) of the model serving, on all
    10,000 test digits and on those the two style sets were not made from."""
    images, labels = mnist_test()
    wrong = np.zeros(len(images), bool)
    for start in range(0, len(images), 250):
        files = [
            ("files", (f"{i}.png", png(images[i]), "image/png"))
            for i in range(start, min(start + 250, len(images)))
        ]
        answer = client.post("/predict/batch", files=files)
        answer.raise_for_status()
        digits = [result["digit"] for result in answer.json()["results"]]
        chunk = slice(start, start + len(digits))
        wrong[chunk] = np.array(digits) != labels[chunk]
    unused = order()[2 * count :]
    return {
        "mnist_test_error": float(wrong.mean()),
        "mnist_unused_test_error": float(wrong[unused].mean()),
        "mnist_unused_digits": len(unused),
    }


def png(digit: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("post", "measure"))
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--label", default="before", help="name of this measurement")
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, timeout=30) as client:
        result = post(client, args.count) if args.action == "post" else measure(client, args.count)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = "posted" if args.action == "post" else args.label
    results[key] = result
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
