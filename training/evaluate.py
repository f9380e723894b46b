"""Evaluate a trained LeNet-5 on the 10,000 MNIST test digits, beside the paper's results.

    lenet5 evaluate --checkpoint model/lenet5.pt

Prints the test error, per-class error and the confusion matrix; then, at the rejection
threshold calibrated on validation digits (as the export stores it), the share of test
digits accepted, the error among them, and how many held-out synthetic non-digits are
rejected: non-digit shapes and mis-segmented pieces of numbers, by kind; and the same for
test digits and non-digit shapes scanned at 8-16 px, at the threshold for such scans. Writes
confusion.png and rejection.png to --plot-dir.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model.lenet5 import LeNet5
from training import checkpoint as checkpoints
from training import mnist
from training.measure import (
    PAPER_RESULTS,
    calibrate,
    calibrate_low_resolution,
    calibration_split,
    distances_of,
    small_scans,
)
from training.negatives import KINDS, MISSEGMENTATIONS, SHAPES, make_negatives
from training.plots import confusion_matrix, plot_confusion, plot_rejection_curve

GROUP_TITLES = {"shapes": "non-digit shapes", "missegmentations": "mis-segmented pieces"}
# Never used in training (training draws negatives with seeds [seed, epoch]).
HELD_OUT_NEGATIVES_SEED = 20_261_122
HELD_OUT_SCANS_SEED = 20_261_204  # not the calibration's: other scans of other digits


def digit_report(labels: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    matrix = confusion_matrix(labels, predicted)
    per_class = 1 - np.diag(matrix) / matrix.sum(1)
    return {
        "test_error": float((predicted != labels).mean()),
        "errors": int((predicted != labels).sum()),
        "per_class_error": {str(d): float(e) for d, e in enumerate(per_class)},
        "confusion": matrix.tolist(),
    }


def rejection_report(
    test_d: Tensor, labels: np.ndarray, negatives_d: Tensor, kinds: np.ndarray, threshold: float
) -> dict[str, Any]:
    accepted = test_d.min(1).values.numpy() <= threshold
    predicted = test_d.argmin(1).numpy()
    negative_rejected = negatives_d.min(1).values.numpy() > threshold
    return {
        "threshold": threshold,
        "digits_accepted": float(accepted.mean()),
        "error_among_accepted": float((predicted[accepted] != labels[accepted]).mean()),
        "error_overall": float((predicted != labels).mean()),
        "negatives_rejected": float(negative_rejected.mean()),
        "negatives_rejected_by_group": {
            group: float(negative_rejected[np.isin(kinds, indices)].mean())
            for group, names in (("shapes", SHAPES), ("missegmentations", MISSEGMENTATIONS))
            if np.isin(kinds, indices := [KINDS.index(name) for name in names]).any()
        },
        "negatives_rejected_by_kind": {
            kind: float(negative_rejected[kinds == index].mean())
            for index, kind in enumerate(KINDS) if (kinds == index).any()
        },
    }  # fmt: skip


def feedback_report(directory: Path, net: LeNet5, threshold: float) -> dict[str, Any]:
    """Error on a feedback export's held-out corrections at the rejection threshold: a digit is
    wrong when misread or rejected, a "not a digit" correction when accepted."""
    from app.feedback.dataset import NONE_LABEL, read

    split = read(directory, "held_out")
    distances = distances_of(net, torch.from_numpy(mnist.prepare(split.frames)))
    rejected = distances.min(1).values.numpy() > threshold
    predicted = distances.argmin(1).numpy()
    none = np.array([label == NONE_LABEL for label in split.labels], bool)
    truth = np.array([-1 if label == NONE_LABEL else int(label) for label in split.labels])
    wrong = (~none & (rejected | (predicted != truth))) | (none & ~rejected)
    return {
        "directory": str(directory),
        "count": len(split.labels),
        "digits": int((~none).sum()),
        "error": float(wrong.mean()) if len(wrong) else 0.0,
        "digits_misread": int((~none & ~rejected & (predicted != truth)).sum()),
        "digits_rejected": int((~none & rejected).sum()),
        "non_digits_accepted": int((none & ~rejected).sum()),
    }


def scan_report(
    net: LeNet5, data: mnist.Mnist, count: int, threshold: float, negatives: np.ndarray
) -> dict[str, Any]:
    """`count` test digits and the non-digit `negatives`, scanned at 8-16 px and read as the
    service reads such scans, judged at the model's two thresholds: the one for small scans
    (calibrated on the validation digits scanned alike, as the export stores it) and
    `threshold`, the one for the rest. A non-digit the scan leaves without ink counts as
    refused."""
    held_out, _ = calibration_split(data)
    calibrated = calibrate_low_resolution(net, held_out.images)
    scan_threshold = float(calibrated["low_resolution_threshold"])
    inputs, read = small_scans(data.test.images[:count], HELD_OUT_SCANS_SEED)
    digits_d = distances_of(net, torch.from_numpy(inputs))
    labels = data.test.labels[:count][read]
    right = digits_d.argmin(1).numpy() == labels
    nearest = digits_d.min(1).values.numpy()
    fakes, _ = small_scans(negatives, HELD_OUT_SCANS_SEED + 2)
    fakes_nearest = distances_of(net, torch.from_numpy(fakes)).min(1).values.numpy()

    def refused(limit: float) -> float:
        return 1 - float((fakes_nearest <= limit).sum()) / len(negatives)

    return {
        "threshold": scan_threshold,
        "other_threshold": threshold,
        "digits": count,
        "digits_read_right": float(right.sum()) / count,
        "digits_accepted": float((nearest <= scan_threshold).sum()) / count,
        "error_among_accepted": float(1 - right[nearest <= scan_threshold].mean()),
        "digits_accepted_at_threshold": float((nearest <= threshold).sum()) / count,
        "non_digits": len(negatives),
        "non_digits_refused": refused(scan_threshold),
        "non_digits_refused_at_threshold": refused(threshold),
    }


def print_report(
    digits: dict[str, Any],
    rejection: dict[str, Any] | None,
    feedback: dict[str, Any] | None = None,
    scans: dict[str, Any] | None = None,
) -> None:
    print(f"test error: {100 * digits['test_error']:.2f}% ({digits['errors']} of 10,000)")
    print("per-class error: " + "  ".join(
        f"{d}: {100 * e:.2f}%" for d, e in digits["per_class_error"].items()))  # fmt: skip
    print("confusion matrix (rows: true digit, columns: predicted):")
    print("      " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(digits["confusion"]):
        print(f"{d:>6}" + "".join(f"{c:>6}" for c in row))
    print("\nMNIST test error, beside the paper (LeCun et al. 1998, Fig. 9):")
    for name, error in PAPER_RESULTS.items():
        print(f"  {name:<28} {100 * error:.2f}%")
    print(f"  {'this model':<28} {100 * digits['test_error']:.2f}%")
    if rejection:
        print(f"\nat the rejection threshold {rejection['threshold']:.2f} (smallest distance):")
        print(f"  test digits accepted       {100 * rejection['digits_accepted']:.2f}%")
        print(f"  error among accepted       {100 * rejection['error_among_accepted']:.2f}%")
        print(f"  error overall              {100 * rejection['error_overall']:.2f}%")
        print(f"  non-digits rejected        {100 * rejection['negatives_rejected']:.2f}%")
        by_group = rejection["negatives_rejected_by_group"]
        for group, names in (("shapes", SHAPES), ("missegmentations", MISSEGMENTATIONS)):
            if group in by_group:
                print(f"    {GROUP_TITLES[group]:<24} {100 * by_group[group]:.2f}%")
            for kind in names:
                if kind in rejection["negatives_rejected_by_kind"]:
                    share = rejection["negatives_rejected_by_kind"][kind]
                    print(f"      {kind:<22} {100 * share:.2f}%")
    if scans:
        print(f"\nscanned at 8-16 px ({scans['digits']} test digits, {scans['non_digits']} "
              f"non-digit shapes), at the small scans' threshold {scans['threshold']:.2f} "
              f"(at the other, {scans['other_threshold']:.2f}, in brackets):")  # fmt: skip
        print(f"  digits read right          {100 * scans['digits_read_right']:.2f}%")
        print(f"  digits accepted            {100 * scans['digits_accepted']:.2f}%   "
              f"({100 * scans['digits_accepted_at_threshold']:.2f}%)")  # fmt: skip
        print(f"  error among accepted       {100 * scans['error_among_accepted']:.2f}%")
        print(f"  non-digits refused         {100 * scans['non_digits_refused']:.2f}%   "
              f"({100 * scans['non_digits_refused_at_threshold']:.2f}%)")  # fmt: skip
    if feedback:
        print(f"\nheld-out corrections ({feedback['directory']}): {feedback['count']}, "
              f"{feedback['digits']} of them digits")  # fmt: skip
        print(f"  error (wrong or rejected)  {100 * feedback['error']:.2f}%   "
              f"beside MNIST test error {100 * digits['test_error']:.2f}%")  # fmt: skip
        print(f"  digits misread             {feedback['digits_misread']}")
        print(f"  digits rejected            {feedback['digits_rejected']}")
        print(f"  non-digits accepted        {feedback['non_digits_accepted']}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("model/lenet5.pt"),
        help="checkpoint to evaluate (default: %(default)s, the shipped model)",
    )
    mnist.add_data_dir_argument(parser)
    parser.add_argument(
        "--negatives",
        type=int,
        default=1000 * len(KINDS),
        help="held-out synthetic non-digits to test rejection on, of every kind alike; 0 skips "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--small-scans",
        type=int,
        default=2000,
        help="test digits, and as many held-out non-digit shapes, to scan at 8-16 px and judge "
        "at the small scans' threshold; 0 skips (default: %(default)s)",
    )
    parser.add_argument(
        "--plot-dir",
        type=Path,
        default=Path("runs/evaluation"),
        help="where confusion.png and rejection.png go (default: %(default)s)",
    )
    parser.add_argument(
        "--feedback",
        type=Path,
        help="a `lenet5 feedback export` directory: also report the error on its held-out split",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    net, state = checkpoints.load(args.checkpoint)
    config = state["config"]
    data = mnist.load(args.data_dir, config["validation_size"], config["seed"])
    labels = data.test.labels
    test_d = distances_of(net, torch.from_numpy(mnist.prepare(data.test.images)))
    held_out, _ = calibration_split(data)
    val_d = distances_of(net, torch.from_numpy(mnist.prepare(held_out.images)))
    digits = digit_report(labels, test_d.argmin(1).numpy())
    args.plot_dir.mkdir(parents=True, exist_ok=True)
    plot_confusion(labels, test_d.argmin(1).numpy(), args.plot_dir / "confusion.png", "test")
    rejection = feedback = scans = None
    threshold = float(calibrate(val_d)["threshold"])
    if args.feedback:
        feedback = feedback_report(args.feedback, net, threshold)
    if args.negatives:
        rng = np.random.default_rng(HELD_OUT_NEGATIVES_SEED)
        # Built from test digits, so no piece of a held-out negative was seen in training.
        fakes, kinds = make_negatives(data.test.images, data.test.labels, args.negatives, rng)
        negatives_d = distances_of(net, torch.from_numpy(mnist.prepare(fakes)))
        rejection = rejection_report(test_d, labels, negatives_d, kinds, threshold)
        plot_rejection_curve(test_d.numpy(), labels, negatives_d.numpy(), threshold,
                             args.plot_dir / "rejection.png")  # fmt: skip
    if args.small_scans:
        rng = np.random.default_rng(HELD_OUT_SCANS_SEED)
        shapes, _ = make_negatives(data.test.images, labels, args.small_scans, rng, SHAPES)
        scans = scan_report(net, data, args.small_scans, threshold, shapes)
    if args.json:
        report = {"digits": digits, "rejection": rejection, "feedback": feedback, "scans": scans}
        print(json.dumps(report, indent=2))
    else:
        print_report(digits, rejection, feedback, scans)
    return 0
