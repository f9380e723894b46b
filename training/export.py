"""Export a trained checkpoint to the ONNX file the service runs.

    lenet5 export --checkpoint runs/lenet5/best.pt --out model/lenet5.onnx

The file carries everything the service needs in its metadata: the architecture computed
from the module, the input scaling, j, the RBF bitmaps, the rejection thresholds calibrated
on validation digits (as they are, and scanned small), a training summary with the measured
test error, a version and the creation time. Besides `distances` it has every layer's activations as
named outputs, for the service's explain view. The graph is the network's inference form
(`InferenceLeNet5`), the same function in fewer nodes. The file is checked (onnx.checker,
onnxruntime against PyTorch on real test digits, distances and activations) before it is
moved into place atomically, so a running service never sees half a file or an unchecked
model.
"""

import argparse
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import Tensor

from model.files import write_atomic
from model.inference import InferenceLeNet5
from model.lenet5 import LeNet5, describe
from model.spec import (
    ACTIVATIONS,
    INPUT,
    INPUT_NAME,
    INPUT_SHAPE,
    OUTPUT_NAMES,
    OUTPUT_SHAPES,
    InputInfo,
    ModelMetadata,
)
from training import checkpoint as checkpoints
from training import mnist
from training.measure import (
    PAPER_RESULTS,
    calibrate,
    calibrate_low_resolution,
    calibration_split,
    distances_of,
)

OPSET = 17
PARITY_TOLERANCE = 1e-4


def training_summary(state: dict, test_error: float, validation_error: float | None) -> dict:
    """What the model is: its measured errors, and every training stage that made it
    (a fine-tuned model lists the run it started from first)."""
    config = state["config"]
    stages = [*state.get("lineage", []), checkpoints.stage(state)]
    return {
        "test_error": test_error,
        "validation_error": validation_error,
        "paper_test_error": PAPER_RESULTS,
        "epochs": sum(s["epochs"] for s in stages),
        "training_seconds": round(sum(s["seconds"] for s in stages), 1),
        "stages": stages,
        "data_checksums": state["data_checksums"],
        "recipe": config.get("recipe", "modern"),
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


def export(
    checkpoint: Path,
    out: Path,
    data_dir: Path | None,
    version: str | None,
    max_test_error: float | None = None,
) -> dict:
    net, state = checkpoints.load(checkpoint)
    config = state["config"]
    data = mnist.load(data_dir, config["validation_size"], config["seed"])
    test_x = torch.from_numpy(mnist.prepare(data.test.images))
    held_out, held_out_name = calibration_split(data)
    val_x = torch.from_numpy(mnist.prepare(held_out.images))
    test_d, val_d = distances_of(net, test_x), distances_of(net, val_x)
    test_error = float((test_d.argmin(1) != torch.from_numpy(data.test.labels)).float().mean())
    val_error = None
    if held_out_name == "validation":
        val_error = float((val_d.argmin(1) != torch.from_numpy(held_out.labels)).float().mean())
    if max_test_error is not None and test_error > max_test_error:
        raise SystemExit(
            f"{checkpoint}: MNIST test error {100 * test_error:.2f}% is above the "
            f"{100 * max_test_error:.2f}% allowed; {out} is left as it was"
        )
    summary = training_summary(state, test_error, val_error)
    weights_digest = hashlib.sha256(
        b"".join(t.numpy().tobytes() for t in net.state_dict().values())
    ).hexdigest()
    version = version or f"{datetime.now(UTC):%Y.%m.%d}-{weights_digest[:8]}"
    rejection = (
        calibrate(val_d)
        | {"calibrated_on": held_out_name}
        | calibrate_low_resolution(net, held_out.images)
    )
    meta = metadata(net, state, summary, rejection, version)
    worst: dict[str, float] = {}

    def write_checked(tmp: Path) -> None:
        to_onnx(net, tmp, meta)
        worst.update(check_parity(tmp, net, test_x[:1000]))

    write_atomic(out, write_checked)
    return {"path": str(out), "version": version, "test_error": test_error,
            "validation_error": val_error, "max_parity_error": worst,
            "rejection": meta.rejection.model_dump()}  # fmt: skip


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
    parser.add_argument(
        "--max-test-error",
        type=float,
        default=None,
        help="refuse to export (writing nothing) a model whose MNIST test error is above this "
        "fraction, e.g. 0.0075",
    )


def main(args: argparse.Namespace) -> int:
    result = export(args.checkpoint, args.out, args.data_dir, args.version, args.max_test_error)
    checkpoints.slim(args.checkpoint, args.out.with_suffix(".pt"))
    print(json.dumps(result, indent=2))
    return 0
