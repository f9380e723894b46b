"""The paper recipe's effective learning rates ε_k = η / (μ + h_kk) in its first pass, per layer,
for each initialisation, beside the paper's "between approximately 7×10⁻⁵ and 0.016".

    python bench/paper_step_sizes.py --data-dir ../shared/data/mnist [--seed 0]

The same computation as the first pass of `lenet5 train --recipe paper --seed S`: the network
initialised from that seed, h_kk from the same 500 training digits, η = 0.0005, μ = 0.02.
Prints, per layer and over all 60,000 parameters, the smallest and largest ε_k and the 5th and
95th percentiles.
"""

import argparse
import json
from pathlib import Path

import torch

from model.lenet5 import LeNet5
from training import mnist, paper, sdlm
from training.train import PAPER_INITS


def first_pass(init: str, images: torch.Tensor, labels: torch.Tensor, seed: int) -> dict:
    torch.manual_seed(seed)
    net = LeNet5()
    p = sdlm.from_net(net)
    p.flat.mul_(paper.init_scale(init, sdlm.fan_ins(net)))
    mask = sdlm.connected_mask(net)
    gen = torch.Generator().manual_seed(seed * 100_003 + 1)
    sample = torch.randperm(len(images), generator=gen)[: paper.HESSIAN_PATTERNS]
    h = sdlm.curvature(p, images[sample], labels[sample], net.output.centers, "plain", 0.0)
    eps = sdlm.step_sizes(h, mask, paper.eta(1), 0.02)
    view, masks = sdlm.Params(eps), sdlm.Params(mask)
    report = {}
    for layer in (*paper.LAYERS, "all"):
        if layer == "all":
            values = eps[mask > 0]
        else:
            values = torch.cat([view[f"{layer}.{kind}"][masks[f"{layer}.{kind}"] > 0]
                                for kind in ("weight", "bias")])  # fmt: skip
        q = torch.quantile(values.double(), torch.tensor([0.0, 0.05, 0.95, 1.0]).double())
        report[layer] = [float(f"{v:.2g}") for v in q.tolist()]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = mnist.load(args.data_dir, 0, args.seed)
    images = torch.from_numpy(mnist.prepare(data.train.images))
    labels = torch.from_numpy(data.train.labels)
    results = {init: first_pass(init, images, labels, args.seed) for init in PAPER_INITS}
    print(json.dumps({"columns": ["min", "p5", "p95", "max"], "paper": [7e-5, 0.016],
                      "first_pass_step_sizes": results}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
