"""What a trained network's numbers are: its RBF distances over a set of images, the rejection
threshold calibrated on validation digits, and the paper's results to set them beside."""

import numpy as np
import torch
from torch import Tensor

from model.lenet5 import LeNet5
from training import mnist

ACCEPT_VALIDATION = 0.99  # share of validation digits the rejection threshold accepts
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


def calibration_split(data: mnist.Mnist) -> tuple[mnist.Split, str]:
    """The digits the rejection threshold is calibrated on, and their name: the held-out
    validation digits, or, for a model trained on all 60,000 training digits as the
    paper's recipe is, those training digits (the test digits stay untouched)."""
    if len(data.validation.labels):
        return data.validation, "validation"
    return data.train, "training"
