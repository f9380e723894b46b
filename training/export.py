"""Export a trained checkpoint to the ONNX file the service runs.

    lenet5 export --checkpoint runs/lenet5/best.pt --out model/lenet5.onnx

The file carries everything the service needs in its metadata: the architecture computed
from the module, the input scaling, j, the RBF bitmaps, the rejection threshold
calibrated on validation digits, a training summary with the measured test error, a
version and the creation time. Besides `distances` it has every layer's activations as
named outputs, for the service's explain view. The graph is the network's inference form
(`InferenceLeNet5`), the same function in fewer nodes. The file is checked (onnx.checker,
onnxruntime against PyTorch on real test digits, distances and activations) before it is
moved into place atomically, so a running service never sees half a file or an unchecked
model.
"""

import argparse
import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from model.lenet5 import LeNet5, Subsampling, describe
from model.spec import (
    ACTIVATIONS,
    INPUT,
    INPUT_NAME,
    INPUT_SHAPE,
    OUTPUT_NAMES,
    OUTPUT_SHAPES,
    SQUASH_A,
    SQUASH_S,
    InputInfo,
    ModelMetadata,
)
from training import mnist
from training.train import distances_of, stage

OPSET = 17
PARITY_TOLERANCE = 1e-4
ACCEPT_VALIDATION = 0.99  # share of validation digits the rejection threshold accepts
PAPER_RESULTS = {"LeNet-5": 0.0095, "LeNet-5 with distortions": 0.008, "boosted LeNet-4": 0.007}


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
        """`distances` and the activations c1 … f6, in the order of OUTPUT_NAMES."""
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


def load_checkpoint(path: Path) -> tuple[LeNet5, dict]:
    """Rebuild the network from a self-describing checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise SystemExit(f"{path}: checkpoint not found") from None
    except Exception as exc:
        raise SystemExit(f"{path}: not a readable checkpoint ({exc})") from None
    net = LeNet5()
    net.load_state_dict(state["model"])
    net.eval()
    if state.get("architecture") != describe(net):
        raise SystemExit(f"{path}: the checkpoint's architecture differs from this LeNet5")
    return net, state


def calibrate(distances: Tensor) -> dict:
    """Threshold on the smallest RBF distance that accepts ACCEPT_VALIDATION of the
    (validation) digits given."""
    nearest = distances.min(1).values.numpy()
    return {
        "score": "min_distance",
        "threshold": float(np.quantile(nearest, ACCEPT_VALIDATION)),
        "validation_digits_accepted": ACCEPT_VALIDATION,
    }


def training_summary(state: dict, test_error: float, validation_error: float) -> dict:
    """What the model is: its measured errors, and every training stage that made it
    (a fine-tuned model lists the run it started from first)."""
    config = state["config"]
    stages = [*state.get("lineage", []), stage(state)]
    return {
        "test_error": test_error,
        "validation_error": validation_error,
        "paper_test_error": PAPER_RESULTS,
        "epochs": sum(s["epochs"] for s in stages),
        "training_seconds": round(sum(s["seconds"] for s in stages), 1),
        "stages": stages,
        "data_checksums": state["data_checksums"],
        **{key: config[key] for key in ("optimizer", "lr", "schedule", "batch_size", "loss",
                                        "j", "distort", "negatives", "seed")},
    }  # fmt: skip


def metadata(
    net: LeNet5, state: dict[str, Any], summary: dict[str, Any], rejection: dict[str, Any],
    version: str,
) -> ModelMetadata:  # fmt: skip
    architecture = describe(net)
    return ModelMetadata.model_validate({
        "architecture": architecture,
        "input": InputInfo(
            shape=["N", *INPUT_SHAPE], background=INPUT.background, ink=INPUT.ink,
            frame=INPUT.frame, digit_box=INPUT.digit_box,
        ),
        "outputs": {name: ["N", *shape] for name, shape in OUTPUT_SHAPES.items()},
        "j": state["config"]["j"],
        "rbf_bitmaps": architecture["rbf_bitmaps"],
        "rejection": rejection,
        "training": summary,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    })  # fmt: skip


def to_onnx(net: LeNet5, path: Path, meta: ModelMetadata | None = None) -> None:
    torch.onnx.export(
        InferenceLeNet5(net), (torch.zeros(2, 1, INPUT.size, INPUT.size),), str(path),
        input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), opset_version=OPSET,
        dynamo=False, dynamic_axes={name: {0: "N"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
    )  # fmt: skip
    model = onnx.load(str(path))
    for key, value in (meta.documents() if meta else {}).items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    model.producer_name = "lenet5"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def check_parity(path: Path, net: LeNet5, images: Tensor) -> dict[str, float]:
    """Largest differences between onnxruntime's outputs and the faithful PyTorch network's
    on `images`; refuse the file beyond tolerance. Distances are compared relative to the
    distance where it exceeds 1 (absolute below), activations, which lie in ±1.7159,
    absolutely.

    A distance is a sum of 84 squares and reaches a few hundred, where float32 itself
    only resolves steps of 1.5e-5: two correct float32 engines summing in different
    orders differ there by ~1e-4 in absolute terms, and by ~1e-6 relative to the value.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a thousand digits take a fraction of a second
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})
    got = dict(zip(OUTPUT_NAMES, outputs, strict=True))
    with torch.no_grad():
        expected = {name: value.numpy() for name, value in net.activations(images).items()}
    reference = expected["output"]
    scale = np.maximum(1.0, np.abs(reference))
    worst = {
        "distances_relative": float((np.abs(got["distances"] - reference) / scale).max()),
        "activations_absolute": max(
            float(np.abs(got[name] - expected[name]).max()) for name in ACTIVATIONS
        ),
    }
    for what, error in worst.items():
        if error > PARITY_TOLERANCE:
            raise SystemExit(
                f"onnxruntime differs from PyTorch by {error:.2e} > {PARITY_TOLERANCE} ({what})"
            )
    return worst


def export(checkpoint: Path, out: Path, data_dir: Path | None, version: str | None) -> dict:
    net, state = load_checkpoint(checkpoint)
    config = state["config"]
    data = mnist.load(data_dir, config["validation_size"], config["seed"])
    test_x = torch.from_numpy(mnist.prepare(data.test.images))
    val_x = torch.from_numpy(mnist.prepare(data.validation.images))
    test_d, val_d = distances_of(net, test_x), distances_of(net, val_x)
    test_error = float((test_d.argmin(1) != torch.from_numpy(data.test.labels)).float().mean())
    val_error = float((val_d.argmin(1) != torch.from_numpy(data.validation.labels)).float().mean())
    summary = training_summary(state, test_error, val_error)
    weights_digest = hashlib.sha256(
        b"".join(t.numpy().tobytes() for t in net.state_dict().values())
    ).hexdigest()
    version = version or f"{datetime.now(UTC):%Y.%m.%d}-{weights_digest[:8]}"
    meta = metadata(net, state, summary, calibrate(val_d), version)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        to_onnx(net, tmp, meta)
        worst = check_parity(tmp, net, test_x[:1000])
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "version": version, "test_error": test_error,
            "validation_error": val_error, "max_parity_error": worst,
            "rejection": meta.rejection.model_dump()}  # fmt: skip


def slim_checkpoint(checkpoint: Path, out: Path) -> None:
    """The checkpoint without optimizer state: what `lenet5 evaluate` needs, a third the size."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    slim = {k: v for k, v in state.items() if k not in ("optimizer", "schedule")}
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(slim, tmp)
    os.replace(tmp, out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("runs/lenet5/best.pt"),
        help="training checkpoint to export (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("model/lenet5.onnx"),
        help="ONNX file to write; a slim .pt checkpoint is written beside it "
        "(default: %(default)s)",
    )
    mnist.add_data_dir_argument(parser)
    parser.add_argument("--version", default=None,
                        help="model version (default: date and weights digest)")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    result = export(args.checkpoint, args.out, args.data_dir, args.version)
    slim_checkpoint(args.checkpoint, args.out.with_suffix(".pt"))
    print(json.dumps(result, indent=2))
    return 0
