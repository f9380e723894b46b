"""Short real training runs on a small real MNIST subset; checkpoints and resume; export."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.spec import OUTPUT_NAMES
from training import mnist, train
from training.checkpoint import load as load_checkpoint
from training.export import export
from training.measure import distances_of
from training.train import TrainConfig, fit


@pytest.fixture(scope="module")
def quick_run(mnist_dir: Path, tmp_path_factory) -> tuple[TrainConfig, Path]:
    """Two epochs on 4,000 real training digits (seconds on two cores)."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(data_dir=str(mnist_dir), out_dir=str(out), epochs=2, train_limit=4000,
                         validation_size=1000, j=5.0, seed=1, threads=1)  # fmt: skip
    fit(config)
    return config, out


def test_short_real_run_lowers_loss_and_beats_chance_widely(quick_run):
    _, out = quick_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_error"] < 0.3  # chance is 0.90
    for name in ("checkpoint.pt", "best.pt", "curves.png", "confusion.png"):
        assert (out / name).stat().st_size > 0


def test_checkpoint_describes_itself(quick_run):
    config, out = quick_run
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["config"]["j"] == config.j and state["epoch"] == 2
    assert state["architecture"]["totals"]["trainable_parameters"] == 60_000
    assert set(state["data_checksums"]) == set(mnist.CANONICAL)


def test_interrupted_run_resumes_exactly_like_an_uninterrupted_one(
    quick_run, tmp_path, monkeypatch
):
    config, out = quick_run
    real_epoch = train.train_one_epoch

    def interrupted_in_epoch_2(config, net, optimizer, images, targets, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(config, net, optimizer, images, targets, epoch)

    monkeypatch.setattr(train, "train_one_epoch", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(replace(config, out_dir=str(tmp_path)))
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 1  # the finished epoch survived the interruption
    monkeypatch.setattr(train, "train_one_epoch", real_epoch)
    fit(replace(config, out_dir=str(tmp_path), resume=True))
    resumed = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    straight = torch.load(out / "checkpoint.pt", weights_only=False)
    assert resumed["epoch"] == 2 and len(resumed["metrics"]) == 2
    for name, tensor in straight["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=0, atol=1e-5)


def test_export_matches_pytorch_on_real_digits_and_embeds_metadata(quick_run, mnist_dir, tmp_path):
    _, out = quick_run
    target = tmp_path / "lenet5.onnx"
    result = export(out / "best.pt", target, mnist_dir, version="test")
    model = onnx.load(str(target))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["lenet5.architecture"]["totals"]["connections"] == 340_908
    assert meta["lenet5.input"]["background"] == -0.1 and meta["lenet5.input"]["ink"] == 1.175
    assert meta["lenet5.training"]["test_error"] == result["test_error"]
    assert meta["lenet5.rejection"]["threshold"] > 0
    # A quick run's small scans lie further from the codes than its digits: a threshold above.
    assert (
        meta["lenet5.rejection"]["low_resolution_threshold"] > meta["lenet5.rejection"]["threshold"]
    )
    assert len(meta["lenet5.rbf_bitmaps"]["digits"]) == 10

    net, _ = load_checkpoint(out / "best.pt")
    data = mnist.load(mnist_dir, 1000, 1)
    images = mnist.prepare(data.test.images[:300])
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    assert session.get_inputs()[0].shape == ["N", 1, 32, 32]
    got = session.run(None, {"image": images})
    with torch.no_grad():
        expected = net.activations(torch.from_numpy(images))
    # Distances reach a few hundred: within 1e-4 of the value there, absolutely below 1.
    np.testing.assert_allclose(got[0], expected["output"].numpy(), atol=1e-4, rtol=1e-4)
    for index, name in enumerate(OUTPUT_NAMES[1:], start=1):  # activations lie in ±1.7159
        np.testing.assert_allclose(got[index], expected[name].numpy(), atol=1e-4, rtol=0)


def test_failed_export_leaves_the_existing_model_untouched(tmp_path):
    target = tmp_path / "lenet5.onnx"
    target.write_bytes(b"the model that is serving")
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="bogus.pt"):
        export(bogus, target, None, version=None)
    assert target.read_bytes() == b"the model that is serving"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_training_with_negatives_pushes_held_out_non_digits_away(quick_run, mnist_dir, tmp_path):
    """One epoch of fine-tuning at j = 84, with and without non-digits in the batches."""
    from training.negatives import make_negatives

    config, out = quick_run
    tuned = {}
    for share in (0.0, 0.33):
        run = replace(config, out_dir=str(tmp_path / str(share)), epochs=1, j=84.0,
                      negatives=share, init_from=str(out / "best.pt"))  # fmt: skip
        tuned[share], _ = load_checkpoint(fit(run))
    assert (
        torch.load(tmp_path / "0.33" / "best.pt", weights_only=False)["lineage"][0]["epochs"] == 2
    )
    data = mnist.load(mnist_dir, 1000, 1)
    fakes, _ = make_negatives(data.test.images, data.test.labels, 500, np.random.default_rng(7))
    x = torch.from_numpy(mnist.prepare(fakes))
    nearest = {share: distances_of(net, x).min(1).values.median() for share, net in tuned.items()}
    assert nearest[0.33] > nearest[0.0] + 10


def small_run(
    mnist_dir: Path, **settings
) -> tuple[TrainConfig, mnist.Mnist, torch.Tensor, torch.Tensor]:
    """A run on 400 training digits: its config, data, and digits and labels as epoch_data takes
    them."""
    config = TrainConfig(
        data_dir=str(mnist_dir), train_limit=400, validation_size=100, seed=3, **settings
    )
    data = train.load_data(config)
    digits = torch.from_numpy(mnist.prepare(data.train.images))
    return config, data, digits, torch.from_numpy(data.train.labels.astype(np.int64))


def test_low_res_replaces_its_share_of_digits_with_small_scans_of_themselves(mnist_dir):
    config, data, digits, _ = small_run(mnist_dir, low_res=0.25)

    first = train.scanned_at_low_resolution(config, data, digits, epoch=1)
    again = train.scanned_at_low_resolution(config, data, digits, epoch=1)
    other = train.scanned_at_low_resolution(config, data, digits, epoch=2)

    changed = (first != digits).flatten(1).any(1)
    assert 0.2 * len(digits) <= changed.sum() <= 0.25 * len(digits)
    assert torch.equal(first, again) and not torch.equal(first, other)
    # A scan of the digit itself: its ink still lies where the digit's does, on the whole.
    ink, scanned = digits[changed] > 0.5, first[changed] > 0.5
    overlap = (ink & scanned).flatten(1).sum(1) / (ink | scanned).flatten(1).sum(1)
    assert overlap.median() > 0.3  # another digit's scan overlaps about half as much


def test_segmented_replaces_its_share_of_digits_and_their_labels(mnist_dir):
    config, data, digits, labels = small_run(mnist_dir, segmented=0.25)

    cut, cut_labels = train.epoch_data(config, data, digits, labels, epoch=1)
    again, _ = train.epoch_data(config, data, digits, labels, epoch=1)
    other, _ = train.epoch_data(config, data, digits, labels, epoch=2)

    assert cut.shape == digits.shape and cut_labels.shape == labels.shape
    changed = (cut != digits).flatten(1).any(1)
    assert changed.sum() == round(0.25 * len(digits))
    assert torch.equal(cut, again) and not torch.equal(cut, other)
    assert torch.equal(cut_labels[~changed], labels[~changed])
    assert not torch.equal(cut_labels[changed], labels[changed])  # other digits took their place


def test_low_res_scans_the_same_share_of_the_non_digits(mnist_dir):
    config, data, digits, labels = small_run(mnist_dir, negatives=0.5)
    sharp, _ = train.epoch_data(config, data, digits, labels, epoch=1)
    small, targets = train.epoch_data(replace(config, low_res=0.25), data, digits, labels, 1)
    fakes = targets == train.NONE
    changed = (sharp[fakes] != small[fakes]).flatten(1).any(1).float().mean()
    assert 0.15 <= changed <= 0.25, changed
