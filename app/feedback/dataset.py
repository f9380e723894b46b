"""The corrections as a dataset on disk: what `lenet5 feedback export` writes and training reads.

    DIR/manifest.json     format, seed, held-out share, counts by split and label, the store
    DIR/labels.csv        one row per record: id, split, file, label, predicted, version, source
    DIR/train/<id>.png    the 28×28 frame the service made of the upload (MNIST's form)
    DIR/held_out/<id>.png
    DIR/SHA256SUMS        every other file's sha256, as `sha256sum -c` reads it

A record's split depends only on the seed and the record's own sha256, so it never changes
as corrections are added: a digit once held out is never trained on by a later export.
The whole directory is written beside DIR and renamed into place, so a reader never sees half
an export.
"""

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from model.files import write_directory_atomic
from model.spec import DIGITS

FORMAT = "lenet5-feedback/1"
SPLITS = ("train", "held_out")
NONE_LABEL = "none"
LABELS = (*DIGITS, NONE_LABEL)  # what a correction can say: a digit, or not a digit
FRAME = 28
COLUMNS = ("id", "split", "file", "label", "predicted", "version", "source", "created")


class DatasetError(ValueError):
    """A feedback dataset that is missing, incomplete or altered; the message names the file."""


@dataclass(frozen=True)
class Example:
    """One record to write: its frame (uint8 FRAME×FRAME, white ink on black) and what it is."""

    id: int
    sha256: str
    frame: np.ndarray
    label: str
    predicted: str
    version: str
    source: str
    created: str


@dataclass(frozen=True)
class Split:
    frames: np.ndarray  # uint8 (n, 28, 28)
    labels: list[str]  # "0" … "9" or "none"
    ids: list[int]


def split_of(sha256: str, seed: int, held_out: float) -> str:
    """'held_out' for a stable, seeded share of records, chosen by their hash alone."""
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    return "held_out" if int.from_bytes(digest[:8]) / 2**64 < held_out else "train"


def write(
    out: Path, examples: Iterable[Example], *, seed: int, held_out: float, store: str
) -> dict:
    """Write the dataset to `out` (which must not exist yet, or be empty); returns the manifest."""
    try:
        return write_directory_atomic(
            out, lambda staging: _write_into(staging, examples, seed, held_out, store)
        )
    except FileExistsError as exc:
        raise DatasetError(str(exc)) from None


def _write_into(
    staging: Path, examples: Iterable[Example], seed: int, held_out: float, store: str
) -> dict:
    for name in SPLITS:
        (staging / name).mkdir()
    counts: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    sums: dict[str, str] = {}
    with open(staging / "labels.csv", "w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(COLUMNS)
        for example in examples:
            name = split_of(example.sha256, seed, held_out)
            file = f"{name}/{example.id}.png"
            data = _png(example.frame)
            (staging / file).write_bytes(data)
            sums[file] = hashlib.sha256(data).hexdigest()
            counts[name][example.label] += 1
            writer.writerow(
                (
                    example.id,
                    name,
                    file,
                    example.label,
                    example.predicted,
                    example.version,
                    example.source,
                    example.created,
                )
            )
    sums["labels.csv"] = _sha256(staging / "labels.csv")
    manifest = {
        "format": FORMAT,
        "seed": seed,
        "held_out": held_out,
        "store": store,
        "counts": {name: sum(c.values()) for name, c in counts.items()},
        "labels": {name: dict(sorted(c.items())) for name, c in counts.items()},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    sums["manifest.json"] = _sha256(staging / "manifest.json")
    lines = "".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items()))
    (staging / "SHA256SUMS").write_text(lines)
    return manifest


def read(directory: Path, split: str) -> Split:
    """One split of a dataset, every file checked against SHA256SUMS first."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; a feedback dataset has {SPLITS}")
    sums = _check(directory)
    frames, labels, ids = [], [], []
    with open(directory / "labels.csv", newline="") as table:
        for row in csv.DictReader(table):
            if row["split"] != split:
                continue
            if row["file"] not in sums:
                raise DatasetError(f"{directory / row['file']}: not listed in SHA256SUMS")
            if row["label"] not in LABELS:
                raise DatasetError(f"{directory / 'labels.csv'}: bad label {row['label']!r}")
            frames.append(_frame(directory / row["file"]))
            labels.append(row["label"])
            ids.append(int(row["id"]))
    stack = np.stack(frames) if frames else np.zeros((0, FRAME, FRAME), np.uint8)
    return Split(stack, labels, ids)


def _check(directory: Path) -> dict[str, str]:
    listing = directory / "SHA256SUMS"
    try:
        lines = listing.read_text().splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{listing}: not found; is {directory} a feedback export?") from None
    sums = {}
    for line in lines:
        digest, _, file = line.partition("  ")
        sums[file] = digest
        path = directory / file
        if not path.is_file():
            raise DatasetError(f"{path}: missing")
        if _sha256(path) != digest:
            raise DatasetError(f"{path}: sha256 differs from SHA256SUMS (altered or damaged)")
    manifest = json.loads((directory / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{directory / 'manifest.json'}: format is not {FORMAT}")
    return sums


def _png(frame: np.ndarray) -> bytes:
    if frame.shape != (FRAME, FRAME) or frame.dtype != np.uint8:
        shape = f"{frame.dtype} {frame.shape}"
        raise DatasetError(f"a frame must be uint8 {FRAME}×{FRAME}, not {shape}")
    buffer = io.BytesIO()
    Image.fromarray(frame, "L").save(buffer, "PNG")
    return buffer.getvalue()


def _frame(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        frame = np.asarray(image.convert("L"))
    if frame.shape != (FRAME, FRAME):
        raise DatasetError(f"{path}: {frame.shape[1]}×{frame.shape[0]}, not {FRAME}×{FRAME}")
    return frame


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
