"""`lenet5 blend`: a fine-tune's weights blended back toward its base, on the shipped model."""

from pathlib import Path

import pytest
import torch

from model.cli import main
from training import checkpoint as checkpoints

SHIPPED = Path(__file__).resolve().parents[1] / "model" / "lenet5.pt"


def tune_of(base: Path, out: Path, lineage: list | None = None) -> Path:
    """A stand-in for a fine-tune of `base`: every trainable weight moved, its lineage ending
    with the base unless told otherwise."""
    state = checkpoints.read(base)
    generator = torch.Generator().manual_seed(0)
    state["model"] = {
        name: value
        if name == "output.centers"
        else value + torch.randn(value.shape, generator=generator)
        for name, value in state["model"].items()
    }
    state["lineage"] = [*state["lineage"], checkpoints.stage(state)] if lineage is None else lineage
    state["config"] = {**state["config"], "init_from": str(base)}
    checkpoints.save(state, out)
    return out


def test_blend_is_the_weighted_mean_of_the_base_and_its_tune(tmp_path):
    tuned = tune_of(SHIPPED, tmp_path / "tuned.pt")
    out = tmp_path / "blend" / "checkpoint.pt"
    args = ["--base", str(SHIPPED), "--tuned", str(tuned), "--weight", "0.25", "--out", str(out)]
    assert main(["blend", *args]) == 0
    net, state = checkpoints.load(out)  # the same LeNet5, as export and evaluate load it
    base, tune = checkpoints.read(SHIPPED)["model"], checkpoints.read(tuned)["model"]
    for name, value in net.state_dict().items():
        torch.testing.assert_close(value, 0.75 * base[name] + 0.25 * tune[name])
    assert torch.equal(state["model"]["output.centers"], base["output.centers"])
    assert state["config"]["blend"] == {"base": str(SHIPPED), "weight": 0.25}
    assert state["lineage"] == checkpoints.read(tuned)["lineage"]
    assert not set(checkpoints.RESUME_ONLY) & set(state)


def test_blend_refuses_a_checkpoint_not_tuned_from_the_base(tmp_path):
    tuned = tune_of(SHIPPED, tmp_path / "other.pt", lineage=[])
    out = tmp_path / "blend.pt"
    with pytest.raises(SystemExit, match="other.pt: not fine-tuned from"):
        main(["blend", "--base", str(SHIPPED), "--tuned", str(tuned), "--out", str(out)])
    assert not out.exists()


def test_blend_refuses_a_weight_outside_0_to_1(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["blend", "--tuned", "x.pt", "--weight", "1.5", "--out", str(tmp_path / "b.pt")])
    assert exit_info.value.code == 2
    assert "1.5 is not between 0 and 1" in capsys.readouterr().err
