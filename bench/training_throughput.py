"""Training throughput of the faithful LeNet-5 beside a plain LeNet of the same shapes.

    python bench/training_throughput.py [--batch-size 32] [--seconds 20] [--threads 2]

The plain network uses unmasked nn.Conv2d (C3 connected to all six S2 maps), F.avg_pool2d
without trainable coefficients and a linear output with cross-entropy; the faithful one is
model.lenet5.LeNet5 with the MAP criterion. Both train on the same real-shaped batches
with Adam; rounds alternate between the two so that load on the machine hits both alike.
The target: faithful ≥ 0.8 × plain images/s.
"""

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from model.lenet5 import LeNet5
from training.losses import map_loss


class PlainLeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(torch.tanh(self.c1(x)), 2)  # (N, 6, 14, 14)
        x = F.avg_pool2d(torch.tanh(self.c3(x)), 2)  # (N, 16, 5, 5)
        x = torch.tanh(self.c5(x)).flatten(1)  # (N, 120)
        return self.output(torch.tanh(self.f6(x)))  # (N, 10)


def images_per_second(net, loss_fn, batch: int, seconds: float) -> float:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, 32, 32) * 1.275 - 0.1
    y = torch.randint(0, 10, (batch,))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="total per network")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    faithful, plain = LeNet5(), PlainLeNet()
    runs: dict[str, list[float]] = {"faithful": [], "plain": []}
    per_round = args.seconds / args.rounds
    for _ in range(args.rounds):
        runs["faithful"].append(
            images_per_second(
                faithful, lambda d, y: map_loss(d, y, 5.0), args.batch_size, per_round
            )
        )
        runs["plain"].append(images_per_second(plain, F.cross_entropy, args.batch_size, per_round))
    result = {name: round(statistics.median(r)) for name, r in runs.items()}
    result["ratio"] = round(result["faithful"] / result["plain"], 3)
    result |= {"batch_size": args.batch_size, "threads": args.threads}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
