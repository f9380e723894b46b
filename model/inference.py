"""LeNet-5's inference form: the trained network as the exported graph computes it.

The same function as model.lenet5.LeNet5 in far fewer graph nodes, built from a trained LeNet5's
weights; training.export writes it to ONNX and checks it against the faithful network.
"""

import torch
from torch import Tensor, nn

from model.lenet5 import LeNet5, Subsampling
from model.spec import SQUASH_A, SQUASH_S


class InferenceLeNet5(nn.Module):
    """The trained network in the form onnxruntime runs fastest: the same function, with the
    squashing's constants folded into the layers' weights, as batch norm is folded for
    inference.

    The service runs one image per request, where onnxruntime's cost is per node, not per
    multiply: written as the paper writes it (`LeNet5.activations`) the graph has 52 nodes,
    since every squashing is Mul→Tanh→Mul, every subsampling AveragePool→Mul→Add and the
    RBF Unsqueeze→Sub→Pow→ReduceSum. Here each layer reads the bare tanh output t of the
    layer below, whose paper value is A·t, so a layer's weights carry S (from its own
    squashing) and A (from the one below); a subsampling is a 2×2 stride-2 convolution per
    map; the RBF is multiplied out into two Gemms. The activation outputs are A·t, the
    paper's values; onnxruntime computes them even when only `distances` is asked for, but
    off the path to the distances. `check_parity` compares every output with the faithful
    network before a file is shipped.
    """

    def __init__(self, net: LeNet5) -> None:
        super().__init__()
        gain = SQUASH_S * SQUASH_A  # on the weights of a layer that reads A·t
        assert net.c1.bias is not None and net.c5.bias is not None
        with torch.no_grad():
            self.c1 = _conv(SQUASH_S * net.c1.weight, SQUASH_S * net.c1.bias)
            self.s2 = _block_sum(net.s2)
            self.c3 = _conv(gain * net.c3.dense_weight(), SQUASH_S * net.c3.bias)
            self.s4 = _block_sum(net.s4)
            self.c5 = _conv(gain * net.c5.weight, SQUASH_S * net.c5.bias)
            self.f6 = _linear(gain * net.f6.weight, SQUASH_S * net.f6.bias)
            # Σ_j (A·t_j − c_ij)² = −2A·t·c_iᵀ + ‖c_i‖² + A²·‖t‖²: the first two terms are
            # one Gemm, the last a second Gemm whose all-A² matrix adds A²·‖t‖² to every
            # digit. That is two nodes fewer than subtracting, squaring and summing an
            # (N, 10, 84) tensor, at a cost in rounding: on the test digits the distances
            # stay within 1.1e-6 (relative) of float64's, against 4e-7 done directly.
            centers = net.output.centers
            self.rbf_cross = _linear(-2 * SQUASH_A * centers, centers.square().sum(1))
            self.register_buffer("rbf_norm", torch.full_like(centers.T, SQUASH_A**2))
        self.requires_grad_(False)

    rbf_norm: Tensor

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        """`distances` and the activations c1 … f6, in the order of model.spec.OUTPUT_NAMES."""
        t1 = torch.tanh(self.c1(image))  # (N, 6, 28, 28)
        t2 = torch.tanh(self.s2(t1))  # (N, 6, 14, 14)
        t3 = torch.tanh(self.c3(t2))  # (N, 16, 10, 10)
        t4 = torch.tanh(self.s4(t3))  # (N, 16, 5, 5)
        t5 = torch.tanh(self.c5(t4))  # (N, 120, 1, 1)
        t6 = torch.tanh(self.f6(t5.flatten(1)))  # (N, 84)
        distances = torch.addmm(self.rbf_cross(t6), t6 * t6, self.rbf_norm)  # (N, 10)
        return (distances, *(SQUASH_A * t for t in (t1, t2, t3, t4, t5, t6)))


def _conv(weight: Tensor, bias: Tensor, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """A convolution carrying `weight`, shaped (out, in / groups, kh, kw), and `bias`."""
    out_maps, group_maps, height, width = weight.shape
    conv = nn.Conv2d(
        group_maps * groups, out_maps, (height, width), stride, groups=groups, dtype=weight.dtype
    )
    conv.weight.copy_(weight)
    assert conv.bias is not None
    conv.bias.copy_(bias)
    return conv


def _block_sum(layer: Subsampling) -> nn.Conv2d:
    """S2 or S4 as a convolution of each map alone: S·(coefficient·Σ_block A·t + bias) is a
    2×2 stride-2 kernel filled with S·A·coefficient, plus S·bias."""
    block = 2  # Subsampling averages 2×2 blocks
    maps = layer.weight.numel()
    kernel = (SQUASH_S * SQUASH_A * layer.weight).view(maps, 1, 1, 1).expand(-1, -1, block, block)
    return _conv(kernel, SQUASH_S * layer.bias, stride=block, groups=maps)


def _linear(weight: Tensor, bias: Tensor) -> nn.Linear:
    linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
    linear.weight.copy_(weight)
    linear.bias.copy_(bias)
    return linear
