"""Stochastic diagonal Levenberg-Marquardt for LeNet-5 (the paper's Appendix C).

Each parameter w_k gets its own step ε_k = η / (μ + h_kk), where h_kk estimates the
diagonal of the Hessian of the criterion in the Gauss-Newton approximation. h_kk comes
from back-propagating second derivatives (Becker & LeCun's diagonal recursion):

    ∂²E/∂a_i² = f′(a_i)² Σ_k w_ki² ∂²E/∂a_k²,     ∂²E/∂w_ij² = x_j² ∂²E/∂a_i²,

summed over every connection that shares a weight. That recursion is the gradient's own
back-propagation with every weight, every layer input and every squashing slope f′
replaced by its square, and the error signal at the top replaced by the criterion's
second derivative with respect to F6's state; `backward` serves both.

The network is held as one flat tensor (`Params`) with a view per layer, so that an
update of all 60,000 parameters is a single operation: the online recipe makes one
update per training pattern and its cost is the number of operations per step, not the
arithmetic. C3 is stored dense (16 × 6 × 5 × 5) and only the 60 kernels Table I connects
train: the others have no step (ε = 0) and stay zero.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from model.lenet5 import LeNet5
from model.spec import SQUASH_A, SQUASH_S

# (name, shape) of each piece of the flat parameter vector, in order.
LAYOUT: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("c1.weight", (6, 25)), ("c1.bias", (6,)),
    ("s2.weight", (6,)), ("s2.bias", (6,)),
    ("c3.weight", (16, 150)), ("c3.bias", (16,)),
    ("s4.weight", (16,)), ("s4.bias", (16,)),
    ("c5.weight", (120, 400)), ("c5.bias", (120,)),
    ("f6.weight", (84, 120)), ("f6.bias", (84,)),
)  # fmt: skip
LOSSES = ("plain", "map")


def _sizes() -> list[int]:
    return [int(torch.Size(shape).numel()) for _, shape in LAYOUT]


class Params:
    """The trainable parameters as one flat vector (`flat`) and a view of it per piece."""

    def __init__(self, flat: Tensor) -> None:
        self.flat = flat
        self.views = {
            name: part.view(shape)
            for (name, shape), part in zip(LAYOUT, flat.split(_sizes()), strict=True)
        }

    def __getitem__(self, name: str) -> Tensor:
        return self.views[name]

    def squared(self) -> "Params":
        return Params(self.flat.square())


def flat_like(flat: Tensor) -> Params:
    return Params(torch.zeros_like(flat))


def connected_mask(net: LeNet5, dtype: torch.dtype = torch.float32) -> Tensor:
    """1 for every trainable entry of the flat vector, 0 for C3's unconnected slots."""
    mask = torch.ones(sum(_sizes()), dtype=dtype)
    view = Params(mask)
    ones = torch.ones_like(net.c3.weight, dtype=dtype)
    packed = net.c3.scatter.to(dtype) @ ones.view(ones.shape[0], -1)
    view["c3.weight"].copy_(packed.view(16, 6, 25).reshape(16, 150))
    return mask


def fan_ins(net: LeNet5) -> Tensor:
    """F_in of the unit each entry of the flat vector belongs to (a C3 map's row of Table I
    gives its fan-in; a subsampling unit has 4 inputs)."""
    fan = Params(torch.empty(sum(_sizes())))
    fan["c1.weight"].fill_(25)
    fan["c1.bias"].fill_(25)
    for name in ("s2.weight", "s2.bias", "s4.weight", "s4.bias"):
        fan[name].fill_(4)
    rows = torch.tensor([25.0 * len(row) for row in net.c3.table])
    fan["c3.weight"].copy_(rows[:, None].expand(16, 150))
    fan["c3.bias"].copy_(rows)
    fan["c5.weight"].fill_(400)
    fan["c5.bias"].fill_(400)
    fan["f6.weight"].fill_(120)
    fan["f6.bias"].fill_(120)
    return fan.flat


def from_net(net: LeNet5, dtype: torch.dtype = torch.float32) -> Params:
    with torch.no_grad():
        parts: dict[str, Tensor] = {name: net.get_parameter(name) for name, _ in LAYOUT}
        parts["c3.weight"] = net.c3.dense_weight()
        return Params(torch.cat([parts[name].reshape(-1).to(dtype) for name, _ in LAYOUT]))


def to_net(params: Params, net: LeNet5) -> None:
    """Write the parameters back into the module (C3's connected kernels only)."""
    with torch.no_grad():
        for name, _ in LAYOUT:
            target = net.get_parameter(name)
            value = params[name]
            if name == "c3.weight":
                dense = value.reshape(16 * 6, 25)
                value = dense[net.c3.scatter.argmax(0)]
            target.copy_(value.reshape(target.shape).to(target.dtype))


@dataclass
class Activations:
    """What the backward passes need from a forward pass over N patterns."""

    patches1: Tensor  # (N, 25, 784) C1's input windows
    c1: Tensor  # (N, 6, 28, 28) squashed
    sum2: Tensor  # (N, 6, 14, 14) S2's 2×2 block sums
    patches3: Tensor  # (N, 150, 100) C3's input windows over S2
    c3: Tensor  # (N, 16, 10, 10)
    sum4: Tensor  # (N, 16, 5, 5)
    s4: Tensor  # (N, 400)
    c5: Tensor  # (N, 120)
    f6: Tensor  # (N, 84)
    s2: Tensor  # (N, 6, 14, 14)


def _squash(a: Tensor) -> Tensor:
    return a.mul_(SQUASH_S).tanh_().mul_(SQUASH_A)


def _slope(x: Tensor) -> Tensor:
    """f′(a) from f(a) = x: A·S·(1 − tanh²) = (S/A)·(A² − x²)."""
    return x.square().mul_(-SQUASH_S / SQUASH_A).add_(SQUASH_A * SQUASH_S)


def _windows(x: Tensor, k: int) -> Tensor:
    """(N, C, H, W) -> (N, C·k·k, (H−k+1)·(W−k+1)), rows ordered (c, i, j) like a kernel."""
    n, c, h, w = x.shape
    oh, ow = h - k + 1, w - k + 1
    x = x.contiguous()
    view = x.as_strided((n, c, k, k, oh, ow), (c * h * w, h * w, w, 1, w, 1))
    return view.reshape(n, c * k * k, oh * ow)


def _block_sum(x: Tensor) -> Tensor:
    n, c, h, w = x.shape
    return x.view(n, c, h // 2, 2, w // 2, 2).sum((3, 5))


def _spread(g: Tensor) -> Tensor:
    """Each unit's signal to the 2×2 block it sums (the block sum's transpose)."""
    n, c, h, w = g.shape
    return g.view(n, c, h, 1, w, 1).expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)


def forward(p: Params, x: Tensor) -> Activations:
    """LeNet-5's forward pass over (N, 1, 32, 32) inputs, as `LeNet5.activations` computes it."""
    n = x.shape[0]
    patches1 = _windows(x, 5)
    c1 = _squash(torch.matmul(p["c1.weight"], patches1).add_(p["c1.bias"][:, None]))
    c1 = c1.view(n, 6, 28, 28)
    sum2 = _block_sum(c1)
    s2 = _squash(torch.addcmul(p["s2.bias"][:, None, None], sum2, p["s2.weight"][:, None, None]))
    patches3 = _windows(s2, 5)
    c3 = _squash(torch.matmul(p["c3.weight"], patches3).add_(p["c3.bias"][:, None]))
    c3 = c3.view(n, 16, 10, 10)
    sum4 = _block_sum(c3)
    s4 = _squash(torch.addcmul(p["s4.bias"][:, None, None], sum4, p["s4.weight"][:, None, None]))
    s4 = s4.view(n, 400)
    c5 = _squash(torch.addmm(p["c5.bias"], s4, p["c5.weight"].T))
    f6 = _squash(torch.addmm(p["f6.bias"], c5, p["f6.weight"].T))
    return Activations(patches1, c1, sum2, patches3, c3, sum4, s4, c5, f6, s2)


def distances(f6: Tensor, codes: Tensor) -> Tensor:
    """(N, 84), (10, 84) -> (N, 10): the RBF outputs y_i = Σ_j (x_j − w_ij)²."""
    return (f6.unsqueeze(1) - codes).square().sum(-1)


def backward(
    p: Params, acts: Activations, top: Tensor, *, squares: bool = False, out: Tensor | None = None
) -> Tensor:
    """Back-propagate `top` (N, 84), the criterion's derivative with respect to F6's state,
    and return the flat vector of its derivatives with respect to every parameter, summed
    over the N patterns.

    With squares=True this is the second-derivative pass: `p` must then hold the squared
    weights, `top` the second derivatives, and every layer input and slope is squared here.
    """

    def sq(t: Tensor) -> Tensor:
        return t.square() if squares else t

    def slope(x: Tensor) -> Tensor:
        return sq(_slope(x))

    n = top.shape[0]
    g6 = top * slope(acts.f6)
    gc5 = g6 @ p["f6.weight"]
    w6 = g6.T @ sq(acts.c5)
    g5 = gc5.mul_(slope(acts.c5))
    gs4 = g5 @ p["c5.weight"]
    w5 = g5.T @ sq(acts.s4)
    g4 = gs4.mul_(slope(acts.s4)).view(n, 16, 5, 5)
    w4 = (g4 * sq(acts.sum4)).sum((0, 2, 3))
    b4 = g4.sum((0, 2, 3))
    g3 = _spread(g4 * p["s4.weight"][:, None, None]).mul_(slope(acts.c3))
    g3 = g3.view(n, 16, 100)
    # The transpose of the windows' gather: every window's column scattered back and summed.
    gs2 = F.fold(torch.matmul(p["c3.weight"].T, g3), (14, 14), 5)
    w3 = torch.matmul(g3, sq(acts.patches3).transpose(1, 2)).sum(0)
    b3 = g3.sum((0, 2))
    g2 = gs2.mul_(slope(acts.s2))
    w2 = (g2 * sq(acts.sum2)).sum((0, 2, 3))
    b2 = g2.sum((0, 2, 3))
    g1 = _spread(g2 * p["s2.weight"][:, None, None]).mul_(slope(acts.c1)).view(n, 6, 784)
    w1 = torch.matmul(g1, sq(acts.patches1).transpose(1, 2)).sum(0)
    b1 = g1.sum((0, 2))
    parts = (w1, b1, w2, b2, w3, b3, w4, b4, w5, g5.sum(0), w6, g6.sum(0))
    return torch.cat([part.reshape(-1) for part in parts], out=out)


def top_gradient(f6: Tensor, codes: Tensor, labels: Tensor, loss: str, j: float) -> Tensor:
    """∂E/∂F6 for each pattern: E = y_D (plain) or the MAP criterion."""
    diff = f6.unsqueeze(1) - codes  # (N, 10, 84)
    if loss == "plain":
        return 2 * diff[torch.arange(len(labels)), labels]
    weights = _map_weights(diff, labels, j)
    return 2 * (weights.unsqueeze(-1) * diff).sum(1)


def top_curvature(f6: Tensor, codes: Tensor, labels: Tensor, loss: str, j: float) -> Tensor:
    """∂²E/∂x_j² for each F6 unit x_j of each pattern, exact: the criterion, the RBF layer
    with its fixed codes included, is a function of F6's state, and the Gauss-Newton
    approximation starts below it.

    Plain: E = Σ_j (x_j − w_Dj)², so 2. MAP: E = y_D + log(e^−j + Σ_i e^−y_i) with p_i the
    posterior of digit i (the "none" class takes the rest), which gives
    2·(1 − Σ_i p_i) + Σ_i p_i·(2u_ij)² − (Σ_i p_i·2u_ij)², u_ij = x_j − w_ij; never
    negative, since Σ_i p_i ≤ 1.
    """
    if loss == "plain":
        return torch.full_like(f6, 2.0)
    diff = f6.unsqueeze(1) - codes
    posterior = torch.softmax(_eleven_scores(diff.square().sum(-1), j), dim=1)[:, :10]
    mean = (posterior.unsqueeze(-1) * 2 * diff).sum(1)
    second = (posterior.unsqueeze(-1) * (2 * diff).square()).sum(1)
    return 2 * (1 - posterior.sum(1, keepdim=True)) + second - mean.square()


def _eleven_scores(y: Tensor, j: float) -> Tensor:
    return torch.cat([-y, y.new_full((y.shape[0], 1), -j)], dim=1)


def _map_weights(diff: Tensor, labels: Tensor, j: float) -> Tensor:
    """∂E/∂y_i of the MAP criterion: [i = D] − p_i."""
    posterior = torch.softmax(_eleven_scores(diff.square().sum(-1), j), dim=1)[:, :10]
    return F.one_hot(labels, 10).to(diff.dtype) - posterior


def gradient(p: Params, x: Tensor, labels: Tensor, codes: Tensor, loss: str, j: float) -> Tensor:
    """∂E/∂w summed over the patterns, as a flat vector."""
    acts = forward(p, x)
    return backward(p, acts, top_gradient(acts.f6, codes, labels, loss, j))


def curvature(p: Params, x: Tensor, labels: Tensor, codes: Tensor, loss: str, j: float) -> Tensor:
    """The Gauss-Newton diagonal h_kk, averaged over the patterns, as a flat vector."""
    acts = forward(p, x)
    top = top_curvature(acts.f6, codes, labels, loss, j)
    return backward(p.squared(), acts, top, squares=True) / len(x)


def step_sizes(h: Tensor, mask: Tensor, eta: float, mu: float) -> Tensor:
    """ε_k = η / (μ + h_kk) for every trainable entry, 0 for C3's unconnected slots."""
    return mask * eta / (mu + h)
