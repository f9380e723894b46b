"""Train LeNet-5 on MNIST with the paper's criterion; checkpoint every epoch, resumable.

    lenet5 train --epochs 30 --distort --out-dir runs/lenet5

Writes to the output directory: checkpoint.pt (latest, for --resume), best.pt (lowest
validation error), metrics.jsonl (one line per epoch), curves.png and confusion.png.
Each epoch's data order, distortions and negatives are drawn from generators seeded by
(seed, epoch), so a resumed run continues exactly as the uninterrupted one would have.
"""

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler
from tqdm import tqdm

from model.lenet5 import LeNet5
from training import checkpoint as checkpoints
from training import mnist
from training.distort import distort
from training.losses import NONE, map_loss, plain_loss
from training.measure import distances_of

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "cosine")
LOSSES = ("map", "plain")
RECIPES = ("modern", "paper")
PAPER_INITS = ("unit_variance", "fan_in", "sqrt_fan_in")
# What `--recipe paper` means unless these options are given: the paper's 20 passes over
# all 60,000 training digits (it kept no validation split), with the criterion E = y_D.
PAPER_DEFAULTS = {"epochs": 20, "validation_size": 0, "loss": "plain"}


def option(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    """A config field whose metadata carries its command-line help (and choices)."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    recipe: str = option(
        "modern",
        "modern (the options below) or paper: the paper's online stochastic diagonal "
        "Levenberg-Marquardt with its η schedule, by default 20 passes over all 60,000 "
        "digits with E = y_D; it reads --epochs, --validation-size, --loss, --j, --seed, "
        "--threads, --train-limit, --resume and the paper-recipe options, and ignores the rest",
        RECIPES,
    )
    data_dir: str | None = option(
        None, "directory with the four MNIST IDX files (default: download, else npm)"
    )
    out_dir: str = option("runs/lenet5", "where checkpoints, metrics and plots go")
    epochs: int = option(30, "passes over the training digits")
    batch_size: int = option(32, "examples per update")
    optimizer: str = option("adam", "one of " + ", ".join(OPTIMIZERS), OPTIMIZERS)
    lr: float = option(1e-3, "initial learning rate")
    momentum: float = option(0.9, "momentum for momentum/nesterov/rmsprop")
    weight_decay: float = option(0.0, "L2 penalty")
    schedule: str = option(
        "cosine", "learning-rate schedule per epoch: " + ", ".join(SCHEDULES), SCHEDULES
    )
    step_epochs: int = option(10, "with --schedule step: epochs between decays")
    gamma: float = option(0.3, "with --schedule step: decay factor")
    loss: str = option("map", "map (the paper's MAP criterion) or plain (E = y_D)", LOSSES)
    j: float = option(
        84.0, "the MAP criterion's constant j (score of the 'none of these' class is -j)"
    )
    distort: bool = option(
        False, "apply the paper's random planar affine distortions to each batch"
    )
    negatives: float = option(
        0.0, "share of each batch that is synthetic non-digits (target: none)"
    )
    low_res: float = option(
        0.0,
        "share of each epoch's digits (and non-digits) replaced by themselves scanned at "
        "8-16 px and upscaled, as the service reads such a scan",
    )
    segmented: float = option(
        0.0,
        "share of each epoch's digits replaced by training digits as /read sees them: cut out "
        "of written numbers by its segmenter and framed as it frames every piece",
    )
    validation_size: int = option(
        5000, "training digits held out for model selection and calibration"
    )
    train_limit: int = option(0, "use only the first N training digits (0: all); for quick runs")
    seed: int = option(0, "seed for initialisation, data order, distortions and negatives")
    threads: int = option(0, "torch CPU threads (0: torch's default)")
    init_from: str | None = option(
        None, "start from this checkpoint's weights (fresh optimizer), e.g. to fine-tune"
    )
    resume: bool = option(False, "continue from OUT_DIR/checkpoint.pt")
    feedback: str | None = option(
        None, "a `lenet5 feedback export` directory: its train split joins every epoch"
    )
    feedback_repeat: int = option(10, "with --feedback: times each correction appears in an epoch")
    paper_init: str = option(
        "unit_variance",
        "paper recipe: initial weights uniform with σ = 1/√F_in (unit_variance), in ±2.4/F_in "
        "as printed (fan_in) or in ±2.4/√F_in (sqrt_fan_in)",
        PAPER_INITS,
    )
    mu: float = option(0.02, "paper recipe: μ in ε_k = η / (μ + h_kk)")
    no_curvature: bool = option(
        False,
        "paper recipe: ignore h_kk (ε_k = η/μ for every parameter), to measure what "
        "the second derivatives buy",
    )
    keep_first_curvature: bool = option(
        False,
        "paper recipe: keep the h_kk estimated before the first pass for every pass instead of "
        "re-estimating them, to measure what re-estimating does",
    )
    eager: bool = option(
        False,
        "paper recipe: run the online step eagerly instead of compiling it with "
        "torch.compile (half the steps/s, no compilation)",
    )


def make_optimizer(config: TrainConfig, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    lr, decay, momentum = config.lr, config.weight_decay, config.momentum
    match config.optimizer:
        case "sgd":
            return torch.optim.SGD(params, lr=lr, weight_decay=decay)
        case "momentum":
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=decay)
        case "nesterov":
            return torch.optim.SGD(
                params, lr=lr, momentum=momentum, nesterov=True, weight_decay=decay
            )
        case "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=decay)
        case "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, momentum=momentum, weight_decay=decay)
        case "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; choose from {OPTIMIZERS}")


def make_schedule(config: TrainConfig, optimizer: torch.optim.Optimizer) -> LRScheduler:
    match config.schedule:
        case "constant":
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
        case "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, config.step_epochs, config.gamma)
        case "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.epochs)
    raise ValueError(f"unknown schedule {config.schedule!r}; choose from {SCHEDULES}")


def criterion(config: TrainConfig, distances: Tensor, targets: Tensor) -> Tensor:
    if config.loss == "map":
        return map_loss(distances, targets, config.j)
    return plain_loss(distances, targets)


def epoch_data(
    config: TrainConfig, data: mnist.Mnist, digits: Tensor, labels: Tensor, epoch: int
) -> tuple[Tensor, Tensor]:
    """This epoch's training set: the digits (prepared once by the caller), a share of them
    scanned at low resolution and a share replaced by digits cut out of numbers if asked, plus
    fresh synthetic non-digits if asked."""
    if config.low_res > 0:
        digits = scanned_at_low_resolution(config, data, digits, epoch)
    if config.segmented > 0:
        digits, labels = cut_out_of_numbers(config, data, digits, labels, epoch)
    if config.negatives <= 0:
        return digits, labels
    from training.negatives import make_negatives

    count = round(len(digits) * config.negatives / (1 - config.negatives))
    rng = np.random.default_rng([config.seed, epoch])
    fakes, _ = make_negatives(data.train.images, data.train.labels, count, rng)
    if config.low_res > 0:
        # Non-digits scanned as small as the digits are, or the network learns that a small
        # scan's soft strokes are a digit whatever their shape.
        fakes = fakes.copy()
        scan_rng = np.random.default_rng([config.seed, epoch, 2])
        for index, frame in _scanned_share(fakes, config.low_res, scan_rng).items():
            fakes[index] = frame
    fake_labels = torch.full((count,), NONE, dtype=torch.int64)
    return (
        torch.cat([digits, torch.from_numpy(mnist.prepare(fakes))]),
        torch.cat([labels, fake_labels]),
    )


def scanned_at_low_resolution(
    config: TrainConfig, data: mnist.Mnist, digits: Tensor, epoch: int
) -> Tensor:
    """The digits with a share replaced by the same training digits scanned at 8-16 px a side,
    upscaled (training.photos.low_resolution) and read back by the service's pipeline: the
    soft, thick strokes of a small scan, which MNIST's 20-px digits never show."""
    rng = np.random.default_rng([config.seed, epoch, 1])
    scanned = digits.clone()
    for index, frame in _scanned_share(data.train.images, config.low_res, rng).items():
        scanned[index] = torch.from_numpy(mnist.prepare(frame[None]))[0]
    return scanned


def cut_out_of_numbers(
    config: TrainConfig, data: mnist.Mnist, digits: Tensor, labels: Tensor, epoch: int
) -> tuple[Tensor, Tensor]:
    """The digits and labels with a share of the training digits, chosen at random, replaced by
    training digits cut out of numbers by /read's segmenter (training.numbers.segmented_digits):
    a piece framed from a line, its pen evened out, a neighbour's stray ink in its corner."""
    from training.numbers import segmented_digits

    rng = np.random.default_rng([config.seed, epoch, 3])
    count = round(len(data.train.images) * config.segmented)
    frames, cut_labels = segmented_digits(data.train.images, data.train.labels, count, rng)
    chosen = torch.from_numpy(rng.choice(len(data.train.images), count, replace=False))
    digits, labels = digits.clone(), labels.clone()
    digits[chosen] = torch.from_numpy(mnist.prepare(frames))
    labels[chosen] = torch.from_numpy(cut_labels)
    return digits, labels


def _scanned_share(
    frames: np.ndarray, share: float, rng: np.random.Generator
) -> dict[int, np.ndarray]:
    """A `share` of the uint8 frames, chosen at random, each scanned at 8-16 px, upscaled and
    read back by the service's pipeline, by index; a faint one the reduction left blank is
    left out, keeping its own frame."""
    from app.errors import NoInkError
    from app.imaging import to_frame
    from training.photos import encode, low_resolution

    chosen = rng.choice(len(frames), round(len(frames) * share), replace=False)
    scanned = {}
    for index in chosen.tolist():
        try:
            scanned[index] = to_frame(encode(low_resolution(frames[index], rng)))
        except NoInkError:
            continue
    return scanned


def train_one_epoch(
    config: TrainConfig,
    net: LeNet5,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    targets: Tensor,
    epoch: int,
) -> dict[str, float]:
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(len(images), generator=gen)
    net.train()
    total_loss, digits, wrong = 0.0, 0, 0
    bar = tqdm(range(0, len(order), config.batch_size), desc=f"epoch {epoch}", leave=False)
    for step, start in enumerate(bar, 1):
        idx = order[start : start + config.batch_size]
        x, y = images[idx], targets[idx]
        if config.distort:
            x = distort(x, gen)
        distances = net(x)
        loss = criterion(config, distances, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        is_digit = y != NONE
        total_loss += loss.item()
        digits += int(is_digit.sum())
        wrong += int((distances.argmin(1) != y)[is_digit].sum())
        if step % 50 == 0:
            bar.set_postfix(
                loss=f"{total_loss / step:.4f}", acc=f"{1 - wrong / max(digits, 1):.4f}"
            )
    return {"train_loss": total_loss / step, "train_error": wrong / max(digits, 1)}


def evaluate(config: TrainConfig, net: LeNet5, images: Tensor, labels: Tensor) -> dict[str, float]:
    distances = distances_of(net, images)
    return {
        "loss": float(criterion(config, distances, labels)),
        "error": float((distances.argmin(1) != labels).float().mean()),
    }


def load_data(config: TrainConfig) -> mnist.Mnist:
    data_dir = Path(config.data_dir) if config.data_dir else None
    data = mnist.load(data_dir, config.validation_size, config.seed)
    if not config.train_limit:
        return data
    limited = mnist.Split(data.train.images[: config.train_limit],
                          data.train.labels[: config.train_limit])  # fmt: skip
    return mnist.Mnist(limited, data.validation, data.test, data.checksums)


def start(
    config: TrainConfig, out: Path
) -> tuple[LeNet5, torch.optim.Optimizer, LRScheduler, list[dict[str, Any]], list[dict[str, Any]]]:
    """The network, optimizer, schedule, lineage and metrics so far: fresh, initialised
    from another checkpoint (--init-from), or resumed from this run's own checkpoint."""
    net = LeNet5()
    lineage: list[dict[str, Any]] = []
    if config.init_from:
        parent = checkpoints.read(Path(config.init_from))
        net.load_state_dict(parent["model"])
        lineage = [*parent.get("lineage", []), checkpoints.stage(parent)]
    optimizer = make_optimizer(config, net.parameters())
    schedule = make_schedule(config, optimizer)
    history: list[dict[str, Any]] = []
    if config.resume and (out / "checkpoint.pt").exists():
        state = checkpoints.read(out / "checkpoint.pt")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        history = state["metrics"]
    return net, optimizer, schedule, lineage, history


def prepare_run(config: TrainConfig) -> tuple[Path, mnist.Mnist]:
    """The output directory (made), the threads and seed set, and the data, for either recipe."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    return out, load_data(config)


def fit(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the path of the best checkpoint (for the paper's
    recipe, which selects nothing, the final one)."""
    if config.recipe == "paper":
        from training import paper

        return paper.fit(config)
    out, data = prepare_run(config)
    net, optimizer, schedule, lineage, history = start(config, out)
    train_x = torch.from_numpy(mnist.prepare(data.train.images))
    train_y = torch.from_numpy(data.train.labels)
    val_x = torch.from_numpy(mnist.prepare(data.validation.images))
    val_y = torch.from_numpy(data.validation.labels)
    if config.feedback:
        frames, targets = corrections(Path(config.feedback), config.feedback_repeat)
        train_x, train_y = torch.cat([train_x, frames]), torch.cat([train_y, targets])
    for epoch in range(len(history) + 1, config.epochs + 1):
        started = time.perf_counter()
        images, targets = epoch_data(config, data, train_x, train_y, epoch)
        row: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        row |= train_one_epoch(config, net, optimizer, images, targets, epoch)
        row |= {f"val_{k}": v for k, v in evaluate(config, net, val_x, val_y).items()}
        row["seconds"] = round(time.perf_counter() - started, 2)
        schedule.step()
        history.append(row)
        state = checkpoints.make(net, asdict(config), epoch, history, data.checksums,
                                 optimizer, schedule, lineage)  # fmt: skip
        record_epoch(out, row, state)
    finish(out, net, val_x, val_y, history)
    return out / "best.pt"


def corrections(directory: Path, repeat: int) -> tuple[Tensor, Tensor]:
    """The train split of a feedback export as inputs and targets, each `repeat` times; a
    correction saying "not a digit" targets the MAP criterion's none class."""
    from app.feedback.dataset import NONE_LABEL, read

    split = read(directory, "train")
    targets = [NONE if label == NONE_LABEL else int(label) for label in split.labels]
    print(f"feedback: {len(targets)} corrections from {directory}, each {repeat}× an epoch")
    frames = torch.from_numpy(mnist.prepare(split.frames)).repeat(repeat, 1, 1, 1)
    return frames, torch.tensor(targets, dtype=torch.int64).repeat(repeat)


def record_epoch(out: Path, row: dict[str, Any], state: checkpoints.State) -> None:
    with open(out / "metrics.jsonl", "a") as log:
        log.write(json.dumps(row) + "\n")
    checkpoints.save(state, out / "checkpoint.pt")
    best = min(r["val_error"] for r in state["metrics"])
    if row["val_error"] == best:
        checkpoints.save(state, out / "best.pt")
    print(
        f"epoch {row['epoch']:3d}  lr {row['lr']:.2e}  loss {row['train_loss']:.4f}  "
        f"train err {100 * row['train_error']:.2f}%  val err {100 * row['val_error']:.2f}%  "
        f"({row['seconds']:.0f} s)",
        flush=True,
    )


def finish(
    out: Path, net: LeNet5, val_x: Tensor, val_y: Tensor, history: list[dict[str, Any]]
) -> None:
    from training.plots import plot_confusion, plot_curves

    best = checkpoints.read(out / "best.pt")
    net.load_state_dict(best["model"])
    predicted = distances_of(net, val_x).argmin(1).numpy()
    plot_curves(history, out / "curves.png")
    plot_confusion(val_y.numpy(), predicted, out / "confusion.png", "validation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with the help and choices its metadata carries."""
    for option in fields(TrainConfig):
        flag = "--" + option.name.replace("_", "-")
        help_text, choices = option.metadata["help"], option.metadata["choices"]
        if isinstance(option.default, bool):
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            kind = str if option.default is None else type(option.default)
            default, shown = option.default, "%(default)s"
            if option.name in PAPER_DEFAULTS:
                # None stands for the recipe's own default, chosen in main().
                default = None
                shown = f"{option.default}; {PAPER_DEFAULTS[option.name]} with --recipe paper"
            parser.add_argument(flag, type=kind, default=default, choices=choices,
                                help=f"{help_text} (default: {shown})")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    recipe_defaults = PAPER_DEFAULTS if values["recipe"] == "paper" else {}
    for option in fields(TrainConfig):
        if values[option.name] is None and option.name in PAPER_DEFAULTS:
            values[option.name] = recipe_defaults.get(option.name, option.default)
    config = TrainConfig(**values)
    if config.negatives and config.loss != "map":
        raise SystemExit("--negatives needs --loss map: non-digits train the 'none' class")
    if config.feedback and config.loss != "map":
        raise SystemExit("--feedback needs --loss map: a 'none' correction trains the none class")
    best = fit(config)
    print(f"checkpoint: {best}")
    return 0
