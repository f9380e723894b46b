"""Two checkouts of the service compared on the photo and number scenarios, their rounds
interleaved: the machine's speed drifts by a fifth or more between runs minutes apart, more
than most changes move a row, so both servers run at once and take turns.

    flock /tmp/lenet5-bench.lock .venv/bin/python bench/service_ab.py BEFORE_DIR [AFTER_DIR]
        [--scenario predict_photo_1mp ...] [--rounds 6] [--duration 4] [--decoders 2]
        [--out FILE]

Each checkout (AFTER_DIR defaults to this one; `git worktree add /tmp/before COMMIT` makes the
other) is served by `python -m model.cli serve` from its own directory with this interpreter,
one worker and --decoders decoder processes. Every scenario (bench/service.py's photo
scenarios, the same bodies and 4 clients) gets a 2 s warm-up on each server, then --rounds
rounds of --duration seconds on each, in alternating order; the medians of requests/s and of
CPU per request (the server's and its decoders') are reported per checkout.
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import service  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent


def serve(tree: Path, decoders: int) -> tuple[subprocess.Popen, str]:
    """The checkout in `tree` serving on a free port, once it is ready."""
    port = service.free_port()
    env = {"PYTHONPATH": str(tree), "LENET5_DECODE_WORKERS": str(decoders)}
    launcher = [sys.executable, "-m", service.CLI]
    return service.start_server(
        port, launcher=launcher, env=env, cwd=tree
    ), f"http://127.0.0.1:{port}"


def compare(
    trees: dict[str, Path], scenarios: list[str], rounds: int, duration: int, decoders: int
) -> dict[str, Any]:
    bodies = service.photo_bodies()
    work = Path(tempfile.mkdtemp(prefix="lenet5-ab-"))
    servers = {name: serve(tree, decoders) for name, tree in trees.items()}
    figures: dict[str, Any] = {}
    try:
        for name in scenarios:
            path, ctype, samples = bodies[name]
            scenario = service.Scenario(work, name, "POST", path, ctype, [s.data for s in samples])
            for server, url in servers.values():
                scenario.run(url, 2, service.PHOTO_CONNECTIONS, 1, server.pid)
            rows: dict[str, list[dict[str, Any]]] = {label: [] for label in servers}
            order = list(servers)
            for round_ in range(rounds):
                for label in order if round_ % 2 == 0 else order[::-1]:
                    server, url = servers[label]
                    rows[label].append(
                        scenario.run(url, duration, service.PHOTO_CONNECTIONS, 1, server.pid)
                    )
            figures[name] = {label: summary(rows[label]) for label in servers}
            print(name, *(f"{label}: {figures[name][label]['line']}" for label in servers),
                  sep="\n  ", flush=True)  # fmt: skip
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)
    return figures


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [row["requests_per_s"] for row in rows]
    cpu = [row["server_and_decoders_cpu_us_per_request"] / 1e3 for row in rows]
    loads = [row["loadavg_1min"] for row in rows]
    rate, cost = statistics.median(rates), statistics.median(cpu)
    errors = sum(row["errors"] for row in rows)
    return {
        "requests_per_s": rate,
        "cpu_ms_per_request": cost,
        "errors": errors,
        "rounds": {"requests_per_s": rates, "cpu_ms_per_request": cpu, "load_average": loads},
        "line": f"{rate:.1f} req/s (rounds {min(rates):.1f}–{max(rates):.1f}), "
        f"CPU {cost:.1f} ms/request, {errors} errors, load {min(loads):.1f}–{max(loads):.1f}",
    }


def commit(tree: Path) -> str:
    """The checkout's commit, marked when its app/ differs from it (the code served)."""
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    changed = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "--", "app"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    return f"{head} with changes to app/" if changed else head


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the checkout to compare against")
    parser.add_argument("after", type=Path, nargs="?", default=REPO, help="default: this one")
    parser.add_argument("--scenario", action="append", choices=sorted(service.PHOTO_TARGETS),
                        help="default: all four")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per checkout")
    parser.add_argument("--duration", type=int, default=4, help="seconds per round")
    parser.add_argument("--decoders", type=int, default=2, help="decoder processes per server")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    scenarios = args.scenario or list(service.PHOTO_TARGETS)
    figures = compare(trees, scenarios, args.rounds, args.duration, args.decoders)
    if args.out:
        result = {
            "trees": {label: str(tree) for label, tree in trees.items()},
            "commits": {label: commit(tree) for label, tree in trees.items()},
            "decoders": args.decoders,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "scenarios": figures,
        }
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
