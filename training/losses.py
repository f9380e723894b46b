"""The paper's training criteria over RBF distances y (N, 10), Section II-C.

Both are means over the batch. The MAP criterion reads the RBF outputs as an 11-way
choice among the ten digits (score −y_i) and a "none of these" class (score −j):

    E = y_D + log(e^(−j) + Σ_i e^(−y_i))   =   −log P(D), P ∝ (e^(−y_0), …, e^(−y_9), e^(−j)).

A non-digit example takes the "none" class as its target (NONE), which pushes all ten
distances up, beyond j; for digits the same 11-way cross-entropy is exactly the MAP
criterion above.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

NONE = 10  # target index of the "none of these" class


def eleven_way_logits(distances: Tensor, j: float) -> Tensor:
    """(N, 10) distances -> (N, 11) scores [−y_0, …, −y_9, −j]."""
    rubbish = distances.new_full((distances.shape[0], 1), -j)
    return torch.cat([-distances, rubbish], dim=1)


def map_loss(distances: Tensor, targets: Tensor, j: float) -> Tensor:
    """The MAP criterion; targets are digits 0-9 or NONE for a non-digit."""
    return F.cross_entropy(eleven_way_logits(distances, j), targets)


def plain_loss(distances: Tensor, targets: Tensor) -> Tensor:
    """E = y_D: the distance to the correct class's code, alone (the paper's eq. 8)."""
    return distances.gather(1, targets.unsqueeze(1)).mean()
