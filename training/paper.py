"""The paper's own training recipe (Section III-C, Appendix C): pure online learning with
stochastic diagonal Levenberg-Marquardt.

    lenet5 train --recipe paper --threads 1 --out-dir runs/paper

One update per training pattern, in a fresh random order every pass over all 60,000
training digits. Before each pass the Gauss-Newton diagonal h_kk is estimated on 500
patterns and held for the pass; each parameter steps by ε_k = η / (μ + h_kk) times its
gradient, with μ = 0.02 and the global rate η on the paper's schedule. After every pass
the training and test errors are measured on all 60,000 and 10,000 digits (the test
error is reported, as in the paper's Fig. 5, and never used to choose anything), and a
checkpoint is written atomically: an interrupted run resumes with --resume from the last
complete pass, and draws the same orders and Hessian samples as an uninterrupted one.
"""

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from model.files import write_bytes_atomic
from model.lenet5 import LeNet5, describe
from training import checkpoint as checkpoints
from training import mnist, sdlm
from training.measure import distances_of
from training.train import TrainConfig, prepare_run

HESSIAN_PATTERNS = 500
# (passes, η): 0.0005 for the first two passes, 0.0002 for the next three, 0.0001 for the
# next three, 0.00005 for the next four, and 0.00001 thereafter.
ETA_SCHEDULE: tuple[tuple[int, float], ...] = ((2, 5e-4), (3, 2e-4), (3, 1e-4), (4, 5e-5))
ETA_FINAL = 1e-5
PAPER_FIGURES = {"test_error": 0.0095, "train_error_pass_19": 0.0035,
                 "step_size_range_first_pass": (7e-5, 0.016)}  # fmt: skip
LAYERS = ("c1", "s2", "c3", "s4", "c5", "f6")


def init_scale(init: str, fan_in: Tensor) -> Tensor:
    """What multiplies the module's draw, uniform in ±2.4/F_in, to give `init`: the printed
    ±2.4/F_in itself, ±2.4/√F_in, or σ = 1/√F_in (uniform in ±√(3/F_in))."""
    match init:
        case "fan_in":
            return torch.ones_like(fan_in)
        case "sqrt_fan_in":
            return fan_in.sqrt()
        case "unit_variance":
            return fan_in.sqrt() * (3**0.5 / 2.4)
    raise ValueError(f"unknown initialisation {init!r}")


def eta(epoch: int) -> float:
    """The global learning rate for pass `epoch` (1-based)."""
    last = 0
    for passes, value in ETA_SCHEDULE:
        last += passes
        if epoch <= last:
            return value
    return ETA_FINAL


def layer_ranges(values: Tensor, mask: Tensor) -> dict[str, list[float]]:
    """[smallest, largest] of a flat per-parameter vector over each layer's trainable
    parameters (weights and biases)."""
    eps_view, mask_view = sdlm.Params(values), sdlm.Params(mask)
    ranges = {}
    for layer in LAYERS:
        picked = torch.cat(
            [eps_view[f"{layer}.{kind}"][mask_view[f"{layer}.{kind}"] > 0].flatten()
             for kind in ("weight", "bias")]
        )  # fmt: skip
        ranges[layer] = [float(picked.min()), float(picked.max())]
    return ranges


def update(flat: Tensor, eps: Tensor, grad: Tensor, x: Tensor, label: Tensor, codes: Tensor,
           loss: str, j: float) -> None:  # fmt: skip
    """One online step on one pattern: w_k ← w_k − ε_k·∂E/∂w_k."""
    p = sdlm.Params(flat)
    acts = sdlm.forward(p, x)
    top = sdlm.top_gradient(acts.f6, codes, label, loss, j)
    sdlm.backward(p, acts, top, out=grad)
    flat.addcmul_(eps, grad, value=-1.0)


# Compiled, a step costs about half the operations' overhead of the eager one; the graph
# is the same for every pattern and pass, so it compiles once.
compiled_update = torch.compile(update, fullgraph=True, dynamic=False)


def online_pass(p: sdlm.Params, eps: Tensor, images: Tensor, labels: Tensor, codes: Tensor,
                loss: str, j: float, eager: bool) -> None:  # fmt: skip
    """One update per pattern, in the order given."""
    step = update if eager else compiled_update
    grad = torch.empty_like(p.flat)
    for i in range(len(images)):
        step(p.flat, eps, grad, images[i : i + 1], labels[i : i + 1], codes, loss, j)


def errors(net: LeNet5, images: Tensor, labels: Tensor, codes: Tensor) -> dict[str, float]:
    distances = distances_of(net, images)
    mean_y_d = distances.gather(1, labels[:, None]).mean()
    return {"error": float((distances.argmin(1) != labels).float().mean()),
            "mean_y_d": float(mean_y_d)}  # fmt: skip


def fit(config: TrainConfig) -> Path:
    """Run (or resume) the paper's recipe; returns the path of the final checkpoint."""
    out, data = prepare_run(config)
    net = LeNet5()
    history: list[dict] = []
    held: Tensor | None = None  # with --keep-first-curvature: the first pass's h_kk
    if config.resume and (out / "checkpoint.pt").exists():
        state = checkpoints.read(out / "checkpoint.pt")
        net.load_state_dict(state["model"])
        history = state["metrics"]
        held = state.get("curvature")
    codes = net.output.centers
    p = sdlm.from_net(net)
    if not history:
        p.flat.mul_(init_scale(config.paper_init, sdlm.fan_ins(net)))
    mask = sdlm.connected_mask(net)
    train_x = torch.from_numpy(mnist.prepare(data.train.images))
    train_y = torch.from_numpy(data.train.labels)
    test_x = torch.from_numpy(mnist.prepare(data.test.images))
    test_y = torch.from_numpy(data.test.labels)
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        sample = torch.randperm(len(train_x), generator=gen)[:HESSIAN_PATTERNS]
        h = sdlm.curvature(p, train_x[sample], train_y[sample], codes, config.loss, config.j)
        if config.keep_first_curvature:
            held = h if held is None else held
            h = held
        eps = sdlm.step_sizes(torch.zeros_like(h) if config.no_curvature else h, mask,
                              eta(epoch), config.mu)  # fmt: skip
        order = torch.randperm(len(train_x), generator=gen)
        online = time.perf_counter()
        online_pass(p, eps, train_x[order], train_y[order], codes, config.loss, config.j,
                    config.eager)  # fmt: skip
        online_seconds = time.perf_counter() - online
        sdlm.to_net(p, net)
        train = errors(net, train_x, train_y, codes)
        test = errors(net, test_x, test_y, codes)
        row: dict[str, Any] = {
            "epoch": epoch, "eta": eta(epoch), "mu": config.mu,
            "train_error": train["error"], "test_error": test["error"],
            "train_mean_y_d": train["mean_y_d"], "test_mean_y_d": test["mean_y_d"],
            "step_size_range": layer_ranges(eps, mask),
            "h_range": layer_ranges(h, mask),
            "steps_per_second": round(len(train_x) / online_seconds, 1),
            "seconds": round(time.perf_counter() - started, 2),
        }  # fmt: skip
        history.append(row)
        # checkpoint.make's contents without an optimizer: this recipe's only state between
        # passes is the weights.
        state = {
            "model": net.state_dict(), "architecture": describe(net), "config": asdict(config),
            "epoch": epoch, "metrics": history, "data_checksums": data.checksums, "lineage": [],
            "curvature": held,
        }  # fmt: skip
        checkpoints.save(state, out / "checkpoint.pt")
        # Rewritten whole from the checkpoint's history, so a resumed run never repeats a row.
        lines = "".join(json.dumps(r) + "\n" for r in history)
        write_bytes_atomic(out / "metrics.jsonl", lines.encode())
        print(
            f"pass {epoch:2d}  η {row['eta']:.0e}  train err {100 * row['train_error']:.2f}%  "
            f"test err {100 * row['test_error']:.2f}%  {row['steps_per_second']:.0f} steps/s  "
            f"({row['seconds']:.0f} s)",
            flush=True,
        )
    from training.plots import plot_paper_curves

    plot_paper_curves(history, out / "fig5.png")
    return out / "checkpoint.pt"
