"""The paper's recipe: its schedule, its initialisation, and short real online runs."""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.lenet5 import LeNet5
from training import paper, sdlm
from training.train import PAPER_DEFAULTS, TrainConfig, fit


def test_eta_follows_the_papers_schedule_over_twenty_passes():
    expected = [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8
    assert [paper.eta(epoch) for epoch in range(1, 21)] == expected


def test_fan_ins_follow_table_i_and_each_layers_wiring():
    net = LeNet5()
    fan = sdlm.Params(sdlm.fan_ins(net))
    rows = [len(row) for row in net.c3.table]
    assert fan["c3.bias"].tolist() == [25.0 * r for r in rows]
    assert fan["c1.weight"].unique().tolist() == [25.0]
    assert fan["s4.weight"].unique().tolist() == [4.0]
    assert fan["c5.weight"].unique().tolist() == [400.0]
    assert fan["f6.bias"].unique().tolist() == [120.0]
    # The module's own draw lies within ±2.4/F_in, entry by entry.
    assert (sdlm.from_net(net).flat.abs() <= 2.4 / sdlm.fan_ins(net) + 1e-7).all()


@pytest.fixture(scope="module")
def short_run(mnist_dir: Path, tmp_path_factory) -> tuple[TrainConfig, Path]:
    """Two online passes over 1,500 real training digits (eager: nothing to compile)."""
    out = tmp_path_factory.mktemp("paper")
    config = TrainConfig(recipe="paper", data_dir=str(mnist_dir), out_dir=str(out),
                         train_limit=1500, seed=3, threads=1, eager=True,
                         **PAPER_DEFAULTS | {"epochs": 2})  # fmt: skip
    fit(config)
    return config, out


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_short_paper_run_learns_and_reports_every_pass(short_run):
    _, out = short_run
    first, second = rows(out)
    assert (first["epoch"], second["epoch"]) == (1, 2)
    assert second["train_error"] < first["train_error"] < 0.3  # chance is 0.90
    assert second["test_error"] < 0.3
    for layer in paper.LAYERS:
        low, high = first["step_size_range"][layer]
        assert 0 < low <= high <= paper.eta(1) / first["mu"]
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["config"]["recipe"] == "paper" and state["epoch"] == 2
    assert state["config"]["validation_size"] == 0 and state["config"]["loss"] == "plain"
    assert (out / "fig5.png").stat().st_size > 0


def test_resumed_paper_run_continues_exactly_as_the_uninterrupted_one(short_run, tmp_path):
    config, out = short_run
    interrupted = replace(config, out_dir=str(tmp_path), epochs=1)
    fit(interrupted)
    fit(replace(interrupted, epochs=2, resume=True))
    assert rows(tmp_path) == [
        {**row, "seconds": r["seconds"], "steps_per_second": r["steps_per_second"]}
        for row, r in zip(rows(out), rows(tmp_path), strict=True)
    ]
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    uninterrupted = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
    for name, value in uninterrupted.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)


def test_keep_first_curvature_holds_the_first_passs_step_sizes(short_run, tmp_path):
    config, out = short_run
    fit(replace(config, out_dir=str(tmp_path), keep_first_curvature=True))
    held, fresh = rows(tmp_path), rows(out)
    assert held[0]["h_range"] == fresh[0]["h_range"] == held[1]["h_range"]
    assert fresh[1]["h_range"] != fresh[0]["h_range"]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["curvature"] is not None
