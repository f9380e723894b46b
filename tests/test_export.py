"""The inference form the exporter writes: the same function as the paper's network, in few
nodes, and a parity check that catches any output that is not."""

import copy
from pathlib import Path

import onnx
import pytest
import torch

from model.inference import InferenceLeNet5
from model.lenet5 import LeNet5
from model.spec import ACTIVATIONS, OUTPUT_NAMES
from training.checkpoint import load as load_checkpoint
from training.export import check_parity, to_onnx
from training.mnist import prepare

CHECKPOINT = Path(__file__).resolve().parent.parent / "model" / "lenet5.pt"


@pytest.fixture(scope="module")
def trained() -> LeNet5:
    torch.set_num_threads(1)
    net, _ = load_checkpoint(CHECKPOINT)
    return net


@pytest.fixture(scope="module")
def digits(mnist_test) -> torch.Tensor:
    images, _ = mnist_test
    return torch.from_numpy(prepare(images[:500]))


@pytest.mark.parametrize("weights", ["trained", "initial"])
def test_inference_form_computes_the_papers_network_in_float64(weights, trained, digits):
    torch.manual_seed(0)
    net = copy.deepcopy(trained) if weights == "trained" else LeNet5()
    net.double()
    noise = torch.empty(100, *digits.shape[1:], dtype=torch.float64).uniform_(-1.5, 1.5)
    images = torch.cat([digits.double(), noise])
    with torch.no_grad():
        expected = net.activations(images)
        got = dict(zip(OUTPUT_NAMES, InferenceLeNet5(net)(images), strict=True))
    torch.testing.assert_close(got["distances"], expected["output"], rtol=1e-12, atol=1e-12)
    for name in ACTIVATIONS:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-12)


def test_exported_graph_is_the_inference_form(trained, tmp_path):
    target = tmp_path / "lenet5.onnx"
    to_onnx(trained, target)
    graph = onnx.load(str(target)).graph
    # Constant nodes hold the squashing's amplitude; onnxruntime folds them when it loads.
    nodes = [node for node in graph.node if node.op_type != "Constant"]
    producers = {output: node for node in nodes for output in node.output}
    upstream, pending = set(), ["distances"]
    while pending:
        node = producers.get(pending.pop())
        if node is not None and node.name not in upstream:
            upstream.add(node.name)
            pending.extend(node.input)
    distances_path = [node for node in nodes if node.name in upstream]  # graph order
    assert [node.op_type for node in distances_path] == [
        *["Conv", "Tanh"] * 5,  # C1, S2, C3, S4, C5
        "Flatten", "Gemm", "Tanh",  # F6
        "Gemm", "Mul", "Gemm",  # RBF: the cross term, then A²·‖t‖² added on
    ]  # fmt: skip
    (square,) = [node for node in distances_path if node.op_type == "Mul"]
    assert square.input[0] == square.input[1]
    # Off that path: one Mul per activation output, scaling the tanh to the paper's A·t.
    side = [node for node in nodes if node.name not in upstream]
    assert sorted((node.op_type, *node.output) for node in side) == [
        ("Mul", name) for name in sorted(ACTIVATIONS)
    ]
    assert len(nodes) == 22  # the faithful export had 52, 35 of them not Constant


def test_parity_check_passes_the_export_and_refuses_a_wrong_activation(trained, digits, tmp_path):
    target = tmp_path / "lenet5.onnx"
    to_onnx(trained, target)
    worst = check_parity(target, trained, digits)
    assert worst["distances_relative"] < 1e-5
    assert worst["activations_absolute"] < 1e-4

    model = onnx.load(str(target))
    (c1,) = [node for node in model.graph.node if "c1" in node.output]
    c1.op_type = "Add"  # t1 + A instead of A·t1: c1 wrong, the distances untouched
    onnx.save(model, str(target))
    with pytest.raises(SystemExit, match="activations"):
        check_parity(target, trained, digits)
