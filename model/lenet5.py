"""LeNet-5, as in LeCun, Bottou, Bengio and Haffner, "Gradient-based learning applied to
document recognition", Proc. IEEE 86(11), 1998, Section II-B.

Every layer follows the paper: trainable subsampling (S2, S4), the sparse C3 wiring of
Table I, the scaled tanh squashing, the uniform ±2.4/F_in initialisation, and Euclidean
RBF output units whose centres are fixed ±1 pictures of the digits. The network has
exactly 60,000 trainable parameters and 340,908 connections; `describe` computes those
numbers, and everything else the service shows about the architecture, from the module.
"""

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.bitmaps import DIGIT_BITMAPS, HEIGHT, WIDTH, rbf_codes
from model.spec import INPUT, SQUASH_A, SQUASH_S

# Table I: which S2 maps (rows) feed each C3 map (columns 0-15).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


def init_paper_uniform(tensor: Tensor, fan_in: int) -> None:
    """Uniform in ±2.4/F_in, F_in the fan-in of the unit the weight belongs to (Section II-B)."""
    bound = 2.4 / fan_in
    with torch.no_grad():
        tensor.uniform_(-bound, bound)


class _ScaledTanh(torch.autograd.Function):
    """A·tanh(S·a), computed in place over its input (the fresh output of the layer below,
    which nothing else keeps) and differentiated from its own output, A·S − (S/A)·f². The
    squashing runs after every layer; done by autograd from three operations it allocates
    and stores three times as much and makes training markedly slower."""

    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        ctx.mark_dirty(a)
        out = a.mul_(SQUASH_S).tanh_().mul_(SQUASH_A)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors
        slope = torch.addcmul(
            out.new_tensor(SQUASH_A * SQUASH_S), out, out, value=-SQUASH_S / SQUASH_A
        )
        return slope.mul_(grad)


class Squashing(nn.Module):
    """f(a) = A·tanh(S·a), with A = 1.7159 and S = 2/3 so that f(±1) = ±1 (Appendix A)."""

    def forward(self, a: Tensor) -> Tensor:
        return _ScaledTanh.apply(a)


class Convolution(nn.Conv2d):
    """A convolution over all input maps (C1, C5), initialised as in the paper."""

    kind = "convolution"

    def __init__(self, in_maps: int, out_maps: int, kernel_size: int) -> None:
        super().__init__(in_maps, out_maps, kernel_size)
        fan_in = in_maps * kernel_size * kernel_size
        init_paper_uniform(self.weight, fan_in)
        assert self.bias is not None
        init_paper_uniform(self.bias, fan_in)

    def connections(self, out_shape: Sequence[int]) -> int:
        _, height, width = out_shape
        return height * width * self.weight.numel() + height * width * self.out_channels


class Subsampling(nn.Module):
    """S2, S4: each unit sums a 2×2 block, times a trainable coefficient, plus a trainable
    bias, one coefficient and one bias per map. Squashing is applied by the network."""

    kind = "subsampling"

    def __init__(self, maps: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(maps))
        self.bias = nn.Parameter(torch.empty(maps))
        init_paper_uniform(self.weight, 4)
        init_paper_uniform(self.bias, 4)

    def forward(self, x: Tensor) -> Tensor:
        # The mean of the block times four is its sum; fold the four into the coefficient.
        scale = (4.0 * self.weight).view(1, -1, 1, 1)
        return torch.addcmul(self.bias.view(1, -1, 1, 1), F.avg_pool2d(x, 2), scale)

    def connections(self, out_shape: Sequence[int]) -> int:
        maps, height, width = out_shape
        return maps * height * width * (4 + 1)


class TableConvolution(nn.Module):
    """C3: each output map convolves only the input maps its row of Table I names.

    Only the connected kernels are parameters (packed as `weight`), so the unconnected
    slots are not trained, not counted and stay exactly zero. A fixed one-hot matrix
    scatters the packed kernels into a dense kernel, so one ordinary convolution does the
    work; exported to ONNX, the dense kernel is folded into a constant.
    """

    kind = "convolution (Table I)"

    def __init__(self, table: Sequence[Sequence[int]], in_maps: int, kernel_size: int) -> None:
        super().__init__()
        self.table = tuple(tuple(row) for row in table)
        self.in_maps = in_maps
        self.kernel_size = kernel_size
        slots = [out * in_maps + src for out, row in enumerate(self.table) for src in row]
        self.weight = nn.Parameter(torch.empty(len(slots), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(len(self.table)))
        scatter = torch.zeros(len(self.table) * in_maps, len(slots))
        scatter[slots, range(len(slots))] = 1.0
        self.register_buffer("scatter", scatter, persistent=False)
        packed = 0
        for out, row in enumerate(self.table):
            fan_in = len(row) * kernel_size * kernel_size
            init_paper_uniform(self.weight[packed : packed + len(row)], fan_in)
            init_paper_uniform(self.bias[out : out + 1], fan_in)
            packed += len(row)

    scatter: Tensor

    def dense_weight(self) -> Tensor:
        """The (out, in, k, k) kernel with zeros where Table I has no connection."""
        k = self.kernel_size
        dense = self.scatter @ self.weight.view(self.weight.shape[0], k * k)
        return dense.view(len(self.table), self.in_maps, k, k)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)

    def connections(self, out_shape: Sequence[int]) -> int:
        _, height, width = out_shape
        return height * width * (self.weight.numel() + self.bias.numel())


class FullConnection(nn.Linear):
    """F6: 84 units fully connected to C5, initialised as in the paper."""

    kind = "full connection"

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        init_paper_uniform(self.weight, in_features)
        init_paper_uniform(self.bias, in_features)

    def connections(self, out_shape: Sequence[int]) -> int:
        return self.weight.numel() + self.bias.numel()


class EuclideanRBF(nn.Module):
    """Output: y_i = Σ_j (x_j − w_ij)², with w_i the fixed ±1 picture of digit i."""

    kind = "euclidean RBF"

    def __init__(self, codes: Tensor) -> None:
        super().__init__()
        # A buffer, not a parameter: the paper keeps these codes fixed.
        self.register_buffer("centers", codes)

    centers: Tensor

    def forward(self, x: Tensor) -> Tensor:
        return (x.unsqueeze(1) - self.centers).pow(2).sum(-1)

    def connections(self, out_shape: Sequence[int]) -> int:
        return self.centers.numel()


class LeNet5(nn.Module):
    """LeNet-5: 32×32 image in, ten RBF distances out (the predicted digit is the argmin)."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = Convolution(1, 6, 5)
        self.s2 = Subsampling(6)
        self.c3 = TableConvolution(C3_TABLE, 6, 5)
        self.s4 = Subsampling(16)
        self.c5 = Convolution(16, 120, 5)
        self.f6 = FullConnection(120, 84)
        self.output = EuclideanRBF(torch.from_numpy(rbf_codes()))
        self.squash = Squashing()

    def activations(self, x: Tensor) -> dict[str, Tensor]:
        """Every layer's output, in order; the service's explain view shows these."""
        c1 = self.squash(self.c1(x))  # (N, 6, 28, 28)
        s2 = self.squash(self.s2(c1))  # (N, 6, 14, 14)
        c3 = self.squash(self.c3(s2))  # (N, 16, 10, 10)
        s4 = self.squash(self.s4(c3))  # (N, 16, 5, 5)
        c5 = self.squash(self.c5(s4))  # (N, 120, 1, 1)
        f6 = self.squash(self.f6(c5.flatten(1)))  # (N, 84)
        output = self.output(f6)  # (N, 10)
        return {"c1": c1, "s2": s2, "c3": c3, "s4": s4, "c5": c5, "f6": f6, "output": output}

    def forward(self, x: Tensor) -> Tensor:
        return self.activations(x)["output"]


LAYER_NAMES = ("c1", "s2", "c3", "s4", "c5", "f6", "output")


def describe(net: LeNet5) -> dict:
    """The machine-readable architecture, computed from the module itself.

    Shapes come from a real forward pass; parameters are counted from the module's
    tensors; connections from each layer's wiring.
    """
    with torch.no_grad():
        acts = net.activations(torch.zeros(1, 1, INPUT.size, INPUT.size))
    layers = []
    in_shape = [1, INPUT.size, INPUT.size]
    for name in LAYER_NAMES:
        layer = getattr(net, name)
        out_shape = list(acts[name].shape[1:])
        kernel = getattr(layer, "kernel_size", None)
        if name.startswith("s"):
            kernel = 2
        layers.append(
            {
                "name": name.upper() if name != "output" else "output",
                "kind": layer.kind,
                "input_shape": in_shape,
                "output_shape": out_shape,
                "kernel_size": None if kernel is None else _pair(kernel),
                "maps": out_shape[0],
                "trainable_parameters": sum(p.numel() for p in layer.parameters()),
                "connections": layer.connections(out_shape),
            }
        )
        in_shape = out_shape
    return {
        "name": "LeNet-5",
        "reference": "LeCun, Bottou, Bengio, Haffner. Gradient-based learning applied to "
        "document recognition. Proc. IEEE 86(11):2278-2324, 1998.",
        "input": {"shape": [1, INPUT.size, INPUT.size], "background": INPUT.background,
                  "ink": INPUT.ink},
        "layers": layers,
        "c3_table": [[src in row for row in net.c3.table] for src in range(net.c3.in_maps)],
        "squashing": {"formula": "A * tanh(S * a)", "A": SQUASH_A, "S": SQUASH_S},
        "rbf_bitmaps": {"width": WIDTH, "height": HEIGHT,
                        "digits": [[[1 if ch == "#" else -1 for ch in row] for row in bitmap]
                                   for bitmap in DIGIT_BITMAPS]},
        "totals": {
            "trainable_parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "connections": sum(layer["connections"] for layer in layers),
        },
    }  # fmt: skip


def _pair(k: int | Sequence[int]) -> list[int]:
    return [k, k] if isinstance(k, int) else list(k)
