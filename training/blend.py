"""Blend a fine-tuned model back toward the model it was fine-tuned from: every weight
(1 − w)·base + w·tuned, one network of the same size and speed (weight-space ensembling,
WiSE-FT: Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022).

A fine-tune on what /read shows the network reads numbers better and other writers' digits
worse; the blend of the two keeps most of the first and loses none of the second (README,
"Rejecting what is not a digit"). The tuned checkpoint must be a fine-tune of the base (its
lineage ends with the base), so the blend lies on the path training took.

    lenet5 blend --base model/lenet5.pt --tuned runs/seg/checkpoint.pt --weight 0.5 \\
        --out runs/blend/checkpoint.pt
    lenet5 export --checkpoint runs/blend/checkpoint.pt --out runs/blend/lenet5.onnx
"""

import argparse
from pathlib import Path
from typing import Any

from training import checkpoint as checkpoints


def blend(base: Path, tuned: Path, weight: float) -> dict[str, Any]:
    """The tuned checkpoint with its weights blended: what resuming needs dropped, and its
    configuration saying from what and how much (`blend`), so the model file's last training
    stage says so too. SystemExit naming the files if the tune is not of the base."""
    base_net, base_state = checkpoints.load(base)
    tuned_net, tuned_state = checkpoints.load(tuned)
    if tuned_state.get("lineage", [])[-1:] != [checkpoints.stage(base_state)]:
        raise SystemExit(f"{tuned}: not fine-tuned from {base} (its lineage does not end with it)")
    start, end = base_net.state_dict(), tuned_net.state_dict()
    state = {k: v for k, v in tuned_state.items() if k not in checkpoints.RESUME_ONLY}
    state["model"] = {name: (1 - weight) * start[name] + weight * end[name] for name in end}
    state["config"] = {**tuned_state["config"], "blend": {"base": str(base), "weight": weight}}
    return state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base",
        type=Path,
        default=Path("model/lenet5.pt"),
        help="the checkpoint the tune started from (default: %(default)s)",
    )
    parser.add_argument("--tuned", type=Path, required=True, help="the fine-tuned checkpoint")
    parser.add_argument(
        "--weight",
        type=_weight,
        default=0.5,
        help="the tune's share of each weight, 0 to 1 (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the blended checkpoint to write")


def _weight(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def main(args: argparse.Namespace) -> int:
    state = blend(args.base, args.tuned, args.weight)
    checkpoints.save(state, args.out)
    print(f"{args.out}: {1 - args.weight:g} × {args.base} + {args.weight:g} × {args.tuned}")
    return 0
