"""The network against the paper's numbers, plain PyTorch equivalents and gradcheck."""

import pytest
import torch
import torch.nn.functional as F

from model.bitmaps import DIGIT_BITMAPS, HEIGHT, WIDTH, rbf_codes
from model.lenet5 import (
    C3_TABLE,
    EuclideanRBF,
    LeNet5,
    Squashing,
    Subsampling,
    TableConvolution,
    describe,
)
from model.spec import SQUASH_A

PAPER = {  # layer: (trainable parameters, connections), Section II-B
    "C1": (156, 122_304),
    "S2": (12, 5_880),
    "C3": (1_516, 151_600),
    "S4": (32, 2_000),
    "C5": (48_120, 48_120),
    "F6": (10_164, 10_164),
    "output": (0, 840),
}


@pytest.fixture(scope="module")
def net() -> LeNet5:
    torch.manual_seed(0)
    return LeNet5()


def test_layer_counts_equal_the_papers(net):
    layers = {layer["name"]: layer for layer in describe(net)["layers"]}
    got = {
        name: (layer["trainable_parameters"], layer["connections"])
        for name, layer in layers.items()
    }
    assert got == PAPER


def test_totals_are_60000_parameters_and_340908_connections(net):
    assert describe(net)["totals"] == {"trainable_parameters": 60_000, "connections": 340_908}
    assert sum(p.numel() for p in net.parameters()) == 60_000


def test_layer_shapes_follow_the_paper(net):
    shapes = {layer["name"]: layer["output_shape"] for layer in describe(net)["layers"]}
    assert shapes == {
        "C1": [6, 28, 28], "S2": [6, 14, 14], "C3": [16, 10, 10], "S4": [16, 5, 5],
        "C5": [120, 1, 1], "F6": [84], "output": [10],
    }  # fmt: skip


def test_c3_table_matches_table_i(net):
    table = describe(net)["c3_table"]
    # Row 0 of Table I (S2 map 0) is marked in C3 columns 0, 4-6, 9-12, 14, 15.
    assert [col for col, on in enumerate(table[0]) if on] == [0, 4, 5, 6, 9, 10, 11, 12, 14, 15]
    assert sorted(len(row) for row in C3_TABLE) == [3] * 6 + [4] * 9 + [6]
    assert sum(map(sum, table)) == 60


def test_c3_unconnected_inputs_get_exactly_zero_gradient():
    c3 = TableConvolution(C3_TABLE, 6, 5).double()
    s2 = torch.randn(2, 6, 14, 14, dtype=torch.float64, requires_grad=True)
    out = c3(s2)
    for out_map, row in enumerate(C3_TABLE):
        (grad,) = torch.autograd.grad(out[:, out_map].sum(), s2, retain_graph=True)
        per_input = grad.abs().sum(dim=(0, 2, 3))
        for in_map in range(6):
            if in_map in row:
                assert per_input[in_map] > 0
            else:
                assert per_input[in_map] == 0, (out_map, in_map)


def test_c3_unconnected_kernel_slots_stay_zero_after_training_steps():
    c3 = TableConvolution(C3_TABLE, 6, 5)
    optimizer = torch.optim.SGD(c3.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        c3(torch.randn(4, 6, 14, 14)).pow(2).mean().backward()
        optimizer.step()
    dense = c3.dense_weight().detach()
    for out_map, row in enumerate(C3_TABLE):
        for in_map in range(6):
            assert (dense[out_map, in_map].abs().sum() == 0) == (in_map not in row)


def test_c3_equals_a_sum_of_plain_convolutions_over_its_inputs():
    c3 = TableConvolution(C3_TABLE, 6, 5).double()
    x = torch.randn(3, 6, 14, 14, dtype=torch.float64)
    dense = c3.dense_weight()
    for out_map, row in enumerate(C3_TABLE):
        expected = (
            sum(F.conv2d(x[:, i : i + 1], dense[out_map : out_map + 1, i : i + 1]) for i in row)
            + c3.bias[out_map]
        )
        torch.testing.assert_close(c3(x)[:, out_map : out_map + 1], expected)


def test_subsampling_is_block_sum_times_coefficient_plus_bias():
    layer = Subsampling(2).double()
    x = torch.arange(2 * 4 * 4, dtype=torch.float64).view(1, 2, 4, 4)
    out = layer(x)
    block = x[0, 1, 2:4, 0:2].sum()
    torch.testing.assert_close(out[0, 1, 1, 0], block * layer.weight[1] + layer.bias[1])


def test_squashing_constants_map_plus_minus_one_to_themselves():
    squash = Squashing()
    torch.testing.assert_close(squash(torch.tensor([1.0, -1.0])), torch.tensor([1.0, -1.0]),
                               atol=2e-4, rtol=0)  # fmt: skip
    assert squash(torch.tensor(100.0)) == pytest.approx(SQUASH_A)


def test_rbf_output_is_squared_euclidean_distance_to_the_codes():
    codes = torch.from_numpy(rbf_codes())
    rbf = EuclideanRBF(codes)
    x = torch.randn(5, 84)
    torch.testing.assert_close(rbf(x), torch.cdist(x, codes).pow(2), atol=1e-3, rtol=1e-4)
    assert rbf(codes[3:4]).argmin().item() == 3


def test_rbf_codes_are_plus_minus_one_bitmaps_well_separated():
    codes = rbf_codes()
    assert codes.shape == (10, WIDTH * HEIGHT)
    assert set(codes.ravel().tolist()) == {-1.0, 1.0}
    assert all(len(bitmap) == HEIGHT and {len(r) for r in bitmap} == {WIDTH}
               for bitmap in DIGIT_BITMAPS)  # fmt: skip
    distances = ((codes[:, None] - codes[None]) ** 2).sum(-1)
    off_diagonal = distances[~torch.eye(10, dtype=torch.bool).numpy()]
    assert off_diagonal.min() >= 60


def test_rbf_centres_are_not_trainable(net):
    names = {name for name, _ in net.named_parameters()}
    assert not any(name.startswith("output") for name in names)


def test_initial_weights_are_uniform_within_2_4_over_fan_in(net):
    bounds = {"c1.weight": 2.4 / 25, "c5.weight": 2.4 / 400, "f6.weight": 2.4 / 120}
    params = dict(net.named_parameters())
    for name, bound in bounds.items():
        assert params[name].abs().max() <= bound
        assert params[name].abs().max() > 0.9 * bound  # spread over the range, not collapsed
    assert params["s2.weight"].abs().max() <= 2.4 / 4
    # C3 maps with 3, 4 and 6 inputs have fan-in 75, 100 and 150.
    assert net.c3.weight[:18].abs().max() <= 2.4 / 75
    assert net.c3.weight[-6:].abs().max() <= 2.4 / 150


@pytest.mark.parametrize(
    "layer, shape",
    [(Subsampling(2), (1, 2, 4, 4)), (TableConvolution(C3_TABLE, 6, 5), (1, 6, 5, 5)),
     (EuclideanRBF(torch.from_numpy(rbf_codes())), (2, 84)), (Squashing(), (3, 5))],
)  # fmt: skip
def test_custom_layers_pass_gradcheck_in_float64(layer, shape):
    layer = layer.double()
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    # Through a copy: squashing works in place on the fresh output of the layer below.
    assert torch.autograd.gradcheck(lambda x: layer(x.clone()), (x,))
    names = [name for name, _ in layer.named_parameters()]

    def with_params(*params):
        inputs = (x.detach().clone(),)
        return torch.func.functional_call(layer, dict(zip(names, params, strict=True)), inputs)

    if names:
        # fast_mode checks random projections of the Jacobian: C3 has 1,516 parameters.
        assert torch.autograd.gradcheck(with_params, tuple(layer.parameters()), fast_mode=True)


def test_forward_gives_ten_distances_per_image(net):
    acts = net.activations(torch.zeros(4, 1, 32, 32))
    assert acts["output"].shape == (4, 10)
    assert acts["f6"].shape == (4, 84)
