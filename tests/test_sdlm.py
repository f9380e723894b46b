"""The stochastic diagonal Levenberg-Marquardt pieces against independent computations.

The reference works on the faithful module (`LeNet5`'s own layers, C3 with its 60 packed
Table-I kernels) through torch.func, in float64: per-sample dense Jacobians of every
layer's weighted sums with respect to its input and to its parameters, the squashing's
slope from autograd, and the exact Hessian of the criterion with respect to F6's state.
Squaring those Jacobians and running the paper's diagonal recursion on them gives every
h_kk, summed over all the connections that share a weight, by a route that shares no code
with `training.sdlm`'s convolution-shaped passes.
"""

from functools import partial

import pytest
import torch
from torch import Tensor
from torch.func import functional_call, grad, hessian, jacrev, vmap

from model.lenet5 import LeNet5
from model.spec import SQUASH_A, SQUASH_S
from training import sdlm
from training.losses import eleven_way_logits

LAYERS = ("c1", "s2", "c3", "s4", "c5", "f6")
J = 3.0


@pytest.fixture(scope="module")
def net() -> LeNet5:
    torch.manual_seed(5)
    net = LeNet5().double()
    # Larger weights than the initialisation, so that every layer's slope varies and the
    # MAP posteriors are not all ~0: a test at the initial point would miss terms.
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(3.0)
    return net


@pytest.fixture(scope="module")
def batch() -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 32, 32, generator=generator, dtype=torch.float64) * 1.275 - 0.1
    return x, torch.tensor([3, 8, 0])


def paper_squash(a: Tensor) -> Tensor:
    """The squashing written out: the module's own is an autograd.Function torch.func
    cannot differentiate twice."""
    return SQUASH_A * torch.tanh(SQUASH_S * a)


def criterion(net: LeNet5, f6: Tensor, label: Tensor, loss: str) -> Tensor:
    y = net.output(f6.unsqueeze(0))
    if loss == "plain":
        return y[0, label]
    return torch.nn.functional.cross_entropy(eleven_way_logits(y, J), label.view(1))


def reference_curvature(net: LeNet5, x: Tensor, label: Tensor, loss: str) -> dict[str, Tensor]:
    """h for one pattern, per parameter of the module, by the dense-Jacobian route."""
    layers = {name: getattr(net, name) for name in LAYERS}
    params = {name: dict(layer.named_parameters()) for name, layer in layers.items()}

    def weighted_sum(name: str, layer_params: dict, below: Tensor) -> Tensor:
        """Layer `name`'s weighted sums of `below`, with the parameters given."""
        inp = below.flatten().unsqueeze(0) if name == "f6" else below.unsqueeze(0)
        return functional_call(layers[name], layer_params, (inp,)).squeeze(0)

    slope = vmap(grad(paper_squash))
    inputs, sums, below = [], [], x
    for name in LAYERS:
        inputs.append(below)
        a = weighted_sum(name, params[name], below)
        sums.append(a)
        below = paper_squash(a)
    f6 = below
    d_state = torch.diagonal(hessian(lambda s: criterion(net, s, label, loss))(f6))
    h: dict[str, Tensor] = {}
    for index in reversed(range(len(LAYERS))):
        name, a, inp = LAYERS[index], sums[index], inputs[index]
        d_sum = slope(a.flatten()) ** 2 * d_state.flatten()
        for pname, value in params[name].items():

            def of_param(w: Tensor, name: str = name, pname: str = pname, inp: Tensor = inp):
                return weighted_sum(name, params[name] | {pname: w}, inp)

            jac_w = jacrev(of_param)(value)
            h[f"{name}.{pname}"] = d_sum @ jac_w.reshape(d_sum.numel(), -1).square()
        if index:
            jac_x = jacrev(partial(weighted_sum, name, params[name]))(inp)
            d_state = (d_sum @ jac_x.reshape(d_sum.numel(), -1).square()).view(inp.shape)
    return h


def packed(net: LeNet5, flat: Tensor) -> dict[str, Tensor]:
    """The sdlm flat vector, per parameter of the module (C3 back to its 60 kernels)."""
    view = sdlm.Params(flat)
    slots = net.c3.scatter.argmax(0)
    return {
        name: (view[name].reshape(96, 25)[slots] if name == "c3.weight" else view[name]).flatten()
        for name, _ in sdlm.LAYOUT
    }


@pytest.mark.parametrize("loss", sdlm.LOSSES)
def test_curvature_matches_dense_jacobian_recursion_in_every_layer(net, batch, loss):
    x, labels = batch
    expected: dict[str, Tensor] = {}
    for i in range(len(x)):
        for name, value in reference_curvature(net, x[i], labels[i], loss).items():
            expected[name] = expected.get(name, 0) + value / len(x)
    p = sdlm.from_net(net, torch.float64)
    got = packed(net, sdlm.curvature(p, x, labels, net.output.centers, loss, J))
    assert set(got) == set(expected) and len(got) == 12
    for name, value in expected.items():
        assert value.min() >= 0
        assert value.max() > 0, name
        torch.testing.assert_close(got[name], value.flatten(), rtol=1e-10, atol=1e-14, msg=name)


def test_f6_curvature_is_the_exact_gauss_newton_diagonal_for_the_plain_criterion(net, batch):
    """Just below the criterion the diagonal recursion drops nothing: with E = y_D, whose
    Hessian in F6's state is 2·I, h for F6 is diag(Jᵀ·2I·J) exactly, J the Jacobian of
    F6's state with respect to its weights."""
    x, labels = batch
    with torch.no_grad():
        c5 = net.activations(x)["c5"].flatten(1)
    params = dict(net.f6.named_parameters())

    def state(p: dict, inp: Tensor) -> Tensor:
        return paper_squash(functional_call(net.f6, p, (inp.unsqueeze(0),))).squeeze(0)

    jac = vmap(jacrev(state), in_dims=(None, 0))(params, c5)
    flat = sdlm.curvature(sdlm.from_net(net, torch.float64), x, labels, net.output.centers,
                          "plain", J)  # fmt: skip
    got = packed(net, flat)
    for pname, value in jac.items():
        exact = (2 * value.square()).sum(1).mean(0).flatten()
        torch.testing.assert_close(got[f"f6.{pname}"], exact, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", sdlm.LOSSES)
def test_gradient_matches_autograd_on_the_module(net, batch, loss):
    x, labels = batch
    net.zero_grad()
    distances = net(x)
    if loss == "plain":
        total = distances.gather(1, labels[:, None]).sum()
    else:
        total = torch.nn.functional.cross_entropy(
            eleven_way_logits(distances, J), labels, reduction="sum"
        )
    total.backward()
    p = sdlm.from_net(net, torch.float64)
    got = packed(net, sdlm.gradient(p, x, labels, net.output.centers, loss, J))
    for name, param in net.named_parameters():
        assert param.grad is not None
        torch.testing.assert_close(got[name], param.grad.flatten(), rtol=1e-10, atol=1e-13)
    net.zero_grad()


def test_step_sizes_leave_unconnected_c3_slots_at_zero_and_follow_eta_over_mu_plus_h(net):
    mask = sdlm.connected_mask(net, torch.float64)
    h = torch.rand(mask.shape, dtype=torch.float64)
    eps = sdlm.Params(sdlm.step_sizes(h, mask, 0.0005, 0.02))
    slots = torch.zeros(96, dtype=torch.bool)
    slots[net.c3.scatter.argmax(0)] = True
    c3 = eps["c3.weight"].reshape(96, 25)
    assert int(slots.sum()) == 60
    assert (c3[~slots] == 0).all()
    h3 = sdlm.Params(h)["c3.weight"].reshape(96, 25)
    torch.testing.assert_close(c3[slots], 0.0005 / (0.02 + h3[slots]))
    assert int((eps.flat > 0).sum()) == 60_000


def test_flat_parameters_round_trip_through_the_module(net):
    p = sdlm.from_net(net, torch.float64)
    other = LeNet5().double()
    sdlm.to_net(p, other)
    for (name, mine), theirs in zip(net.state_dict().items(), other.state_dict().values(),
                                    strict=True):  # fmt: skip
        torch.testing.assert_close(mine, theirs, msg=name)
    x = torch.zeros(2, 1, 32, 32, dtype=torch.float64).uniform_(-0.1, 1.175)
    acts = sdlm.forward(p, x)
    torch.testing.assert_close(
        sdlm.distances(acts.f6, net.output.centers), net(x), rtol=1e-12, atol=1e-12
    )
