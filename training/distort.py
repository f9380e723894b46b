"""The paper's training distortions (Section III-C, the 0.8% result): random planar affine
transformations combining translation, scaling, squeezing and horizontal shearing."""

import torch
import torch.nn.functional as F
from torch import Tensor

from model.spec import INPUT

MAX_SHIFT = 2.0  # pixels, each direction
MAX_SCALE = 0.1  # ±10% uniform scale
MAX_SQUEEZE = 0.15  # compress one axis and stretch the other by up to 15%
MAX_SHEAR = 0.3  # horizontal shear factor


def random_affine(n: int, size: int, gen: torch.Generator) -> Tensor:
    """(n, 2, 3) sampling matrices in the normalised [-1, 1] coordinates of affine_grid."""
    u = torch.rand(n, 5, generator=gen) * 2 - 1
    scale = 1 + MAX_SCALE * u[:, 0]
    squeeze = 1 + MAX_SQUEEZE * u[:, 1]
    shear = MAX_SHEAR * u[:, 2]
    shift = MAX_SHIFT * 2 / size * u[:, 3:5]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / (scale * squeeze)
    theta[:, 0, 1] = shear
    theta[:, 1, 1] = squeeze / scale
    theta[:, :, 2] = shift
    return theta


def distort(images: Tensor, gen: torch.Generator) -> Tensor:
    """Distort a batch (N, 1, H, W) of prepared images; what comes in from outside the
    frame is background."""
    theta = random_affine(images.shape[0], images.shape[-1], gen)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    ink = F.grid_sample(images - INPUT.background, grid, align_corners=False)
    return ink + INPUT.background
