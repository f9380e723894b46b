"""The self-describing training checkpoint: what a run saves after every epoch, and what
resuming, fine-tuning, evaluation and export read back.

A checkpoint holds the weights with the architecture they belong to (`model.lenet5.describe`),
the run's whole configuration, every epoch's metrics, the checksums of the MNIST files it was
trained on and the lineage of runs it was fine-tuned from, so that any of them can say what it
is without the run's directory. Saves are atomic: an interrupted run keeps its last checkpoint.
"""

from pathlib import Path
from typing import Any

import torch

from model.files import write_atomic
from model.lenet5 import LeNet5, describe

State = dict[str, Any]
# What a checkpoint needs only to be resumed; evaluation and export do without.
RESUME_ONLY = ("optimizer", "schedule")


def make(
    net: LeNet5,
    config: dict[str, Any],
    epoch: int,
    history: list[dict[str, Any]],
    data_checksums: dict[str, str],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    lineage: list[dict[str, Any]],
) -> State:
    return {
        "model": net.state_dict(),
        "architecture": describe(net),
        "config": config,
        "epoch": epoch,
        "metrics": history,
        "data_checksums": data_checksums,
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "lineage": lineage,
    }


def save(state: State, path: Path) -> None:
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def read(path: Path) -> State:
    """The checkpoint at `path`; SystemExit naming the file if it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise SystemExit(f"{path}: checkpoint not found") from None
    except Exception as exc:
        raise SystemExit(f"{path}: not a readable checkpoint ({exc})") from None


def load(path: Path) -> tuple[LeNet5, State]:
    """The network rebuilt from the checkpoint at `path` (in eval mode), and the checkpoint."""
    state = read(path)
    net = LeNet5()
    net.load_state_dict(state["model"])
    net.eval()
    if state.get("architecture") != describe(net):
        raise SystemExit(f"{path}: the checkpoint's architecture differs from this LeNet5")
    return net, state


def stage(state: State) -> dict[str, Any]:
    """One training stage in a checkpoint's lineage: what ran, how long, how well."""
    return {
        "config": state["config"],
        "epochs": state["epoch"],
        "seconds": round(sum(row["seconds"] for row in state["metrics"]), 1),
        # The paper's recipe keeps no validation split.
        "val_error": min(
            (row["val_error"] for row in state["metrics"] if "val_error" in row), default=None
        ),
    }


def slim(checkpoint: Path, out: Path) -> None:
    """The checkpoint without what only resuming needs: what `lenet5 evaluate` reads, a third
    the size."""
    state = read(checkpoint)
    save({key: value for key, value in state.items() if key not in RESUME_ONLY}, out)
