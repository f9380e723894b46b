"""Shared fixtures: the real MNIST files (from LENET5_TEST_DATA_DIR, else ../shared/data/mnist)."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
MNIST_DIR = Path(os.environ.get("LENET5_TEST_DATA_DIR", REPO.parent / "shared" / "data" / "mnist"))
SHIPPED_MODEL = REPO / "model" / "lenet5.onnx"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.fail(f"MNIST files not found in {MNIST_DIR}; set LENET5_TEST_DATA_DIR")
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist_test(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 real MNIST test digits (uint8 28×28, white on black) and their labels."""
    from training.mnist import read_idx

    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte")
    return images, labels.astype(np.int64)


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    return SHIPPED_MODEL
