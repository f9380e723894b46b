"""Training-curve and confusion-matrix plots (PNG)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def plot_curves(history: list[dict], path: Path) -> None:
    epochs = [row["epoch"] for row in history]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(10, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in history], label="training")
    loss_ax.plot(epochs, [r["val_loss"] for r in history], label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Loss")
    err_ax.plot(epochs, [100 * r["train_error"] for r in history], label="training")
    err_ax.plot(epochs, [100 * r["val_error"] for r in history], label="validation")
    err_ax.axhline(0.95, color="grey", linestyle=":", label="paper LeNet-5 (test) 0.95%")
    err_ax.set(xlabel="epoch", ylabel="error (%)", title="Error", yscale="log")
    for ax in (loss_ax, err_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, path)


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(10, 10) counts: row = true digit, column = predicted digit."""
    matrix = np.zeros((10, 10), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def plot_confusion(labels: np.ndarray, predicted: np.ndarray, path: Path, title: str) -> None:
    matrix = confusion_matrix(labels, predicted)
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    image = ax.imshow(errors, cmap="Reds")
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                color="black" if row != col else "grey")  # fmt: skip
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted", ylabel="true",
           title=f"Confusion ({title}): {errors.sum()} errors of {matrix.sum()}")  # fmt: skip
    fig.colorbar(image, ax=ax, label="errors")
    _save(fig, path)


def plot_rejection_curve(
    test_distances: np.ndarray,
    labels: np.ndarray,
    negative_distances: np.ndarray,
    threshold: float,
    path: Path,
) -> None:
    """Error among accepted digits, and non-digits accepted, against digits rejected,
    as the threshold on the smallest distance sweeps; the stored threshold marked."""
    nearest = test_distances.min(1)
    wrong = test_distances.argmin(1) != labels
    cuts = np.quantile(nearest, np.linspace(0.5, 1.0, 201))
    rejected = [(nearest > c).mean() for c in cuts]
    error = [wrong[nearest <= c].mean() for c in cuts]
    fakes = [(negative_distances.min(1) <= c).mean() for c in cuts]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(100 * np.array(rejected), 100 * np.array(error), label="error among accepted digits")
    ax.plot(100 * np.array(rejected), 100 * np.array(fakes), label="non-digits accepted")
    at = (nearest > threshold).mean()
    ax.axvline(100 * at, color="grey", linestyle=":", label=f"stored threshold {threshold:.1f}")
    ax.set(xlabel="test digits rejected (%)", ylabel="%", yscale="log",
           title="Rejection curve (threshold on the smallest RBF distance)")  # fmt: skip
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)


def plot_paper_curves(history: list[dict], path: Path) -> None:
    """Training and test error after every pass, in the style of the paper's Fig. 5,
    with the paper's own figures marked."""
    passes = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(passes, [100 * r["test_error"] for r in history], "o-", label="test")
    ax.plot(passes, [100 * r["train_error"] for r in history], "s-", label="training")
    ax.axhline(0.95, color="grey", linestyle=":", label="paper: test 0.95%")
    ax.plot([19], [0.35], "k*", markersize=9, label="paper: training 0.35% after 19 passes")
    top = max(3.0, 110 * max(max(r["test_error"], r["train_error"]) for r in history))
    ax.set(xlabel="training set iterations (passes)", ylabel="error rate (%)",
           xlim=(0, max(20, passes[-1]) + 0.5), ylim=(0, top), xticks=range(0, 21, 2),
           title="LeNet-5, the paper's recipe (SDLM, online)")  # fmt: skip
    ax.legend()
    ax.grid(alpha=0.3)
    _save(fig, path)
