"""The corrections as a dataset, and training and evaluating on it."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.feedback.dataset import DatasetError, Example, read, split_of, write
from app.imaging import to_frame
from app.predictor import Predictor
from training import checkpoint as checkpoints
from training.evaluate import feedback_report
from training.train import TrainConfig, fit

SHIPPED_CHECKPOINT = Path(__file__).resolve().parent.parent / "model" / "lenet5.pt"


def examples(frames: np.ndarray, labels, start: int = 1) -> list[Example]:
    return [
        Example(start + i, f"{start + i:064x}", frame, str(label), "", "", "test", "")
        for i, (frame, label) in enumerate(zip(frames, labels, strict=True))
    ]


def test_held_out_records_stay_held_out_as_corrections_are_added() -> None:
    keys = [f"{i:064x}" for i in range(2000)]
    held = [key for key in keys if split_of(key, 0, 0.2) == "held_out"]
    assert 0.17 < len(held) / len(keys) < 0.23
    assert held == [key for key in keys if split_of(key, 0, 0.2) == "held_out"]
    assert held != [key for key in keys if split_of(key, 1, 0.2) == "held_out"]


def test_dataset_round_trips_frames_and_labels(tmp_path: Path, mnist_test) -> None:
    images, labels = mnist_test
    write(tmp_path / "set", examples(images[:50], labels[:50]), seed=3, held_out=0.3, store="t")
    train, held = read(tmp_path / "set", "train"), read(tmp_path / "set", "held_out")
    assert len(train.ids) + len(held.ids) == 50 and held.ids
    for split in (train, held):
        for record_id, frame, label in zip(split.ids, split.frames, split.labels, strict=True):
            assert np.array_equal(frame, images[record_id - 1])
            assert label == str(labels[record_id - 1])


def test_dataset_read_names_an_altered_file(tmp_path: Path, mnist_test) -> None:
    images, labels = mnist_test
    write(tmp_path / "set", examples(images[:5], labels[:5]), seed=0, held_out=0, store="t")
    victim = next((tmp_path / "set" / "train").iterdir())
    Image.fromarray(255 - images[0]).save(victim)
    with pytest.raises(DatasetError, match=f"{victim.name}: sha256 differs"):
        read(tmp_path / "set", "train")


def test_dataset_write_refuses_a_directory_in_use(tmp_path: Path, mnist_test) -> None:
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not empty"):
        write(tmp_path / "set", [], seed=0, held_out=0.2, store="t")
    assert (tmp_path / "set" / "notes.txt").read_text() == "mine"


def low_resolution(digit: np.ndarray, side: int) -> bytes:
    small = Image.fromarray(digit).resize((side, side), Image.Resampling.BOX)
    buffer = io.BytesIO()
    small.resize((side * 6, side * 6), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_fine_tuning_on_corrections_lowers_their_held_out_error(
    tmp_path: Path, mnist_dir: Path, mnist_test, shipped_model: Path
) -> None:
    """600 low-resolution scans through the service's pipeline, half of them held out: one
    short epoch on them beside 2,000 MNIST digits must read the held-out half better."""
    images, labels = mnist_test
    predictor = Predictor.load(shipped_model)
    frames = np.stack([to_frame(low_resolution(image, 8)) for image in images[:600]])
    write(tmp_path / "fb", examples(frames, labels[:600]), seed=0, held_out=0.5, store="t")
    net, _ = checkpoints.load(SHIPPED_CHECKPOINT)
    threshold = predictor.threshold  # the shipped model's, for before and after alike
    before = feedback_report(tmp_path / "fb", net, threshold)
    config = TrainConfig(
        data_dir=str(mnist_dir),
        out_dir=str(tmp_path / "run"),
        epochs=1,
        train_limit=2000,
        lr=2e-4,
        j=84.0,
        seed=1,
        threads=1,
        init_from=str(SHIPPED_CHECKPOINT),
        feedback=str(tmp_path / "fb"),
        feedback_repeat=5,
    )
    tuned, _ = checkpoints.load(fit(config))
    after = feedback_report(tmp_path / "fb", tuned, threshold)
    assert before["error"] > 0.3
    assert after["error"] < before["error"] / 2
    with torch.no_grad():
        assert not torch.equal(next(net.parameters()), next(tuned.parameters()))
