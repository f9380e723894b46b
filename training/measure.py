"""What a trained network's numbers are: its RBF distances over a set of images, the rejection
threshold calibrated on validation digits, and the paper's results to set them beside."""

import io

import numpy as np
import torch
from torch import Tensor

from model.lenet5 import LeNet5
from training import mnist
from training.photos import SCAN_SIDES, small_scan

ACCEPT_VALIDATION = 0.99  # share of validation digits the rejection threshold accepts
# The scans of the held-out digits the threshold for small scans is calibrated on.
CALIBRATION_SCANS_SEED = 20_261_203
PAPER_RESULTS = {"LeNet-5": 0.0095, "LeNet-5 with distortions": 0.008, "boosted LeNet-4": 0.007}


@torch.no_grad()
def distances_of(net: LeNet5, images: Tensor, batch: int = 2000) -> Tensor:
    """(N, 10) RBF distances of prepared images, in eval mode, `batch` images at a time."""
    net.eval()
    return torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)])


def calibrate(distances: Tensor) -> dict[str, float | str]:
    """Threshold on the smallest RBF distance that accepts ACCEPT_VALIDATION of the
    (validation) digits given."""
    nearest = distances.min(1).values.numpy()
    return {
        "score": "min_distance",
        "threshold": float(np.quantile(nearest, ACCEPT_VALIDATION)),
        "validation_digits_accepted": ACCEPT_VALIDATION,
    }


def calibrate_low_resolution(net: LeNet5, images: np.ndarray) -> dict[str, float | str]:
    """calibrate()'s threshold for the (validation) digits `images` read from small scans
    (`small_scans`, seeded with CALIBRATION_SCANS_SEED), under its own name in the model's
    rejection metadata."""
    scans, _ = small_scans(images, CALIBRATION_SCANS_SEED)
    return {
        "low_resolution_threshold": calibrate(distances_of(net, torch.from_numpy(scans)))[
            "threshold"
        ],
        "low_resolution_calibrated_on": f"the same digits scanned at {SCAN_SIDES[0]}-"
        f"{SCAN_SIDES[1]} px",
    }


def small_scans(images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Model inputs of the uint8 MNIST-framed images each scanned at SCAN_SIDES px a side
    (seeded), as the service reads such an upload: clean interpolates it up and judges it as a
    low-resolution scan; and the indices of the images they are. One too faint to survive
    the scan has no ink and is left out."""
    from app.imaging import to_model_inputs

    sides = np.random.default_rng(seed).integers(SCAN_SIDES[0], SCAN_SIDES[1] + 1, len(images))
    uploads = []
    for digit, side in zip(images, sides.tolist(), strict=True):
        buffer = io.BytesIO()
        small_scan(digit, side).save(buffer, "PNG")
        uploads.append(buffer.getvalue())
    prepared = to_model_inputs(uploads)
    if not all(prepared.low_resolution):
        raise AssertionError("the service no longer reads these scans as low-resolution ones")
    read = np.array([i for i in range(len(images)) if i not in prepared.errors], np.int64)
    return prepared.inputs, read


def calibration_split(data: mnist.Mnist) -> tuple[mnist.Split, str]:
    """The digits the rejection threshold is calibrated on, and their name: the held-out
    validation digits, or, for a model trained on all 60,000 training digits as the
    paper's recipe is, those training digits (the test digits stay untouched)."""
    if len(data.validation.labels):
        return data.validation, "validation"
    return data.train, "training"
