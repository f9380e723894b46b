"""Export a trained checkpoint to the ONNX file the service runs.

    lenet5 export --checkpoint runs/lenet5/best.pt --out model/lenet5.onnx

The file carries everything the service needs in its metadata: the architecture computed
from the module, the input scaling, j, the RBF bitmaps, the rejection threshold
calibrated on validation digits, a training summary with the measured test error, a
version and the creation time. Besides `distances` it has every layer's activations as
named outputs, for the service's explain view; a caller that asks only for `distances`
pays nothing for them. The file is checked (onnx.checker, onnxruntime against PyTorch on
real test digits) before it is moved into place atomically, so a running service
never sees half a file or an unchecked model.
"""

import argparse
import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor, nn

from model.lenet5 import INPUT_BACKGROUND, INPUT_INK, INPUT_SIZE, LAYER_NAMES, LeNet5, describe
from training import mnist
from training.train import distances_of, stage

OPSET = 17
ACTIVATIONS = LAYER_NAMES[:-1]  # c1 … f6; "output" is exported as `distances`
OUTPUT_NAMES = ("distances", *ACTIVATIONS)
PARITY_TOLERANCE = 1e-4
ACCEPT_VALIDATION = 0.99  # share of validation digits the rejection threshold accepts
PAPER_RESULTS = {"LeNet-5": 0.0095, "LeNet-5 with distortions": 0.008, "boosted LeNet-4": 0.007}


class ExportedLeNet5(nn.Module):
    """The network with its activations as extra outputs, distances first."""

    def __init__(self, net: LeNet5) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        acts = self.net.activations(image)
        return (acts["output"], *(acts[name] for name in ACTIVATIONS))


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


def metadata(net: LeNet5, state: dict, summary: dict, rejection: dict, version: str) -> dict:
    architecture = describe(net)
    return {
        "lenet5.architecture": architecture,
        "lenet5.input": {
            "name": "image", "shape": ["N", 1, INPUT_SIZE, INPUT_SIZE], "dtype": "float32",
            "background": INPUT_BACKGROUND, "ink": INPUT_INK,
        },
        "lenet5.outputs": {"distances": ["N", 10]} | {
            layer["name"].lower(): ["N", *layer["output_shape"]]
            for layer in architecture["layers"] if layer["name"].lower() in ACTIVATIONS
        },
        "lenet5.j": state["config"]["j"],
        "lenet5.rbf_bitmaps": architecture["rbf_bitmaps"],
        "lenet5.rejection": rejection,
        "lenet5.training": summary,
        "lenet5.version": version,
        "lenet5.created": datetime.now(UTC).isoformat(timespec="seconds"),
    }  # fmt: skip


def to_onnx(net: LeNet5, path: Path, meta: dict) -> None:
    torch.onnx.export(
        ExportedLeNet5(net), (torch.zeros(2, 1, INPUT_SIZE, INPUT_SIZE),), str(path),
        input_names=["image"], output_names=list(OUTPUT_NAMES), opset_version=OPSET,
        dynamo=False, dynamic_axes={name: {0: "N"} for name in ("image", *OUTPUT_NAMES)},
    )  # fmt: skip
    model = onnx.load(str(path))
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    model.producer_name = "lenet5"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def check_parity(path: Path, images: Tensor, expected: Tensor) -> float:
    """Largest difference between onnxruntime's and PyTorch's distances, relative to the
    distance where it exceeds 1 (absolute below); refuse the file beyond tolerance.

    A distance is a sum of 84 squares and reaches a few hundred, where float32 itself
    only resolves steps of 1.5e-5: two correct float32 engines summing in different
    orders differ there by ~1e-4 in absolute terms, and by ~1e-6 relative to the value.
    """
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["distances"], {"image": images.numpy()})
    reference = expected.numpy()
    worst = float((np.abs(got - reference) / np.maximum(1.0, np.abs(reference))).max())
    if worst > PARITY_TOLERANCE:
        raise SystemExit(f"onnxruntime differs from PyTorch by {worst:.2e} > {PARITY_TOLERANCE}")
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
        worst = check_parity(tmp, test_x[:1000], test_d[:1000])
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"path": str(out), "version": version, "test_error": test_error,
            "validation_error": val_error, "max_parity_relative_error": worst,
            "rejection": meta["lenet5.rejection"]}  # fmt: skip


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
