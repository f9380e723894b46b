"""The model the service ships with, measured on the real MNIST test digits."""

import json

import onnxruntime as ort
import pytest

from training.measure import small_scans
from training.mnist import prepare

PAPER_LENET5_ERROR = 0.0095


@pytest.fixture(scope="module")
def session(shipped_model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(shipped_model), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def test_distances(session, mnist_test):
    images, _ = mnist_test
    return session.run(["distances"], {"image": prepare(images)})[0]


def test_shipped_model_beats_the_papers_lenet5_on_the_test_digits(test_distances, mnist_test):
    _, labels = mnist_test
    error = float((test_distances.argmin(1) != labels).mean())
    assert error <= PAPER_LENET5_ERROR


def test_shipped_model_reports_its_measured_test_error(session, test_distances, mnist_test):
    _, labels = mnist_test
    meta = session.get_modelmeta().custom_metadata_map
    summary = json.loads(meta["lenet5.training"])
    assert summary["test_error"] == pytest.approx(
        float((test_distances.argmin(1) != labels).mean())
    )
    assert summary["epochs"] >= 10  # a full training run, not a smoke test


def test_shipped_model_rejection_threshold_accepts_almost_all_test_digits(session, test_distances):
    rejection = json.loads(session.get_modelmeta().custom_metadata_map["lenet5.rejection"])
    accepted = (test_distances.min(1) <= rejection["threshold"]).mean()
    assert accepted >= 0.985


def test_shipped_model_small_scans_threshold_accepts_almost_all_small_scans_of_test_digits(
    session, mnist_test
):
    """Calibrated on validation digits scanned at 8-16 px: test digits scanned alike (through
    the service's pipeline) are accepted as often."""
    images, _ = mnist_test
    rejection = json.loads(session.get_modelmeta().custom_metadata_map["lenet5.rejection"])
    inputs, read = small_scans(images[:1000], seed=5)
    nearest = session.run(["distances"], {"image": inputs})[0].min(1)
    assert len(read) >= 990
    assert (nearest <= rejection["low_resolution_threshold"]).mean() >= 0.975
    assert rejection["low_resolution_threshold"] > rejection["threshold"]
