"""Online steps per second of the paper's recipe (one pattern per update), eager and compiled.

    flock /tmp/lenet5-bench.lock python bench/paper_steps.py [--steps 3000] [--rounds 3]

One step is what `lenet5 train --recipe paper` does per training pattern: the forward pass,
the gradient's back-propagation and the update ε ⊙ ∂E/∂w over the flat parameter vector.
Rounds alternate between the eager and the compiled step, so that load on the machine hits
both alike; each reports wall-clock steps/s and steps per second of the thread's own CPU time
(what the step costs, whatever else the machine runs).
"""

import argparse
import json
import time

import torch

from model.lenet5 import LeNet5
from training import paper, sdlm


def rate(step, p: sdlm.Params, eps, images, labels, codes) -> dict[str, float]:
    grad = torch.empty_like(p.flat)
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(len(images)):
        step(p.flat, eps, grad, images[i : i + 1], labels[i : i + 1], codes, "plain", 0.0)
    return {"wall": len(images) / (time.perf_counter() - wall),
            "cpu": len(images) / (time.thread_time() - cpu)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="steps per round and variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = LeNet5()
    p = sdlm.from_net(net)
    codes = net.output.centers
    images = torch.rand(args.steps, 1, 32, 32) * 1.275 - 0.1
    labels = torch.randint(0, 10, (args.steps,))
    eps = torch.full_like(p.flat, 1e-7)  # small: the weights stay where they started
    started = time.perf_counter()
    rate(paper.compiled_update, p, eps, images[:10], labels[:10], codes)
    compile_seconds = time.perf_counter() - started
    results: dict[str, list[dict[str, float]]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        results["eager"].append(rate(paper.update, p, eps, images, labels, codes))
        results["compiled"].append(rate(paper.compiled_update, p, eps, images, labels, codes))
    summary = {
        name: {kind: [round(min(r[kind] for r in rows)), round(max(r[kind] for r in rows))]
               for kind in ("wall", "cpu")}
        for name, rows in results.items()
    }  # fmt: skip
    print(json.dumps({"threads": args.threads, "compile_seconds": round(compile_seconds, 1),
                      "steps_per_second": summary}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
