"""The inference core without the web: answers, batches, and which model files it refuses."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from app.errors import NoInkError, UnsupportedMediaError
from app.predictor import ModelError, Predictor


@pytest.fixture(scope="module")
def predictor(shipped_model: Path) -> Predictor:
    return Predictor.load(shipped_model, threads=1)


def test_answer_is_stable_for_huge_and_tiny_distances(predictor: Predictor) -> None:
    for distances in ([1e6] * 9 + [2e6], [0.0] * 10, [1e-3, *[3e4] * 9]):
        answer = predictor.answer(np.array(distances, np.float32))
        probabilities = list(answer["probabilities"].values())
        assert all(math.isfinite(p) and 0 <= p <= 1 for p in probabilities)
        assert sum(probabilities) == pytest.approx(1)


def test_far_from_every_digit_means_none_of_these_and_rejected(predictor: Predictor) -> None:
    answer = predictor.answer(np.full(10, predictor.threshold * 2, np.float32))
    assert answer["probabilities"]["none"] == pytest.approx(1)
    assert answer["rejected"] is True


def test_rejection_follows_the_metadata_threshold(predictor: Predictor) -> None:
    below = np.full(10, predictor.threshold * 3, np.float32)
    below[4] = predictor.threshold * 0.99
    above = below.copy()
    above[4] = predictor.threshold * 1.01
    assert predictor.answer(below)["rejected"] is False
    assert predictor.answer(above)["rejected"] is True
    assert predictor.answer(above)["digit"] == 4


def test_a_small_scan_is_judged_by_the_threshold_for_small_scans(
    model_variant, mnist_test, encode, scan_png
) -> None:
    images, _ = mnist_test
    strict = Predictor.load(model_variant("strict_scans", {"lenet5.rejection": {
        "score": "min_distance", "threshold": 84.0, "low_resolution_threshold": 1.0,
    }}))  # fmt: skip
    scans = [scan_png(image, 10) for image in images[:10]]
    frames = [encode(image) for image in images[:10]]
    answers = strict.predict_many(scans + frames)
    assert all(a["rejected"] for a in answers[:10])  # type: ignore[index]
    assert sum(a["rejected"] for a in answers[10:]) <= 1  # type: ignore[index]


def test_a_model_without_a_threshold_for_small_scans_judges_them_as_any_image(
    model_variant,
) -> None:
    path = model_variant("one_threshold", {"lenet5.rejection": {
        "score": "min_distance", "threshold": 84.0}})  # fmt: skip
    assert Predictor.load(path).low_resolution_threshold == 84.0


def test_shipped_small_scans_threshold_accepts_some_the_other_would_reject(
    predictor: Predictor, mnist_test, scan_png
) -> None:
    """Of 100 test digits scanned at 9 px, the shipped model's threshold for small scans
    accepts some that the threshold for other images would reject, and answers say so."""
    images, _ = mnist_test
    answers = predictor.predict_many([scan_png(image, 9) for image in images[:100]])
    scores = np.array([min(a["distances"].values()) for a in answers])  # type: ignore[index]
    between = (scores > predictor.threshold) & (scores <= predictor.low_resolution_threshold)
    assert between.sum() >= 5
    assert not any(answers[i]["rejected"] for i in np.flatnonzero(between))  # type: ignore[index]


def test_predict_many_keeps_order_and_puts_errors_in_place(
    predictor: Predictor, mnist_test, encode
) -> None:
    images = mnist_test[0]
    uploads = [encode(images[0]), b"junk", encode(np.zeros((28, 28), np.uint8)), encode(images[1])]
    results = predictor.predict_many(uploads)
    assert results[0] == predictor.predict(uploads[0])
    assert isinstance(results[1], UnsupportedMediaError)
    assert isinstance(results[2], NoInkError)
    assert results[3] == predictor.predict(uploads[3])


def test_plain_answers_run_a_graph_of_distances_alone_with_the_same_result(
    predictor: Predictor, mnist_test
) -> None:
    from app.imaging import frames_to_inputs

    assert [o.name for o in predictor.distances_session.get_outputs()] == ["distances"]
    full_graph = len(predictor.session.get_outputs())
    assert full_graph == 7
    images = frames_to_inputs(list(mnist_test[0][:64]))
    (expected,) = predictor.session.run(["distances"], {"image": images})
    np.testing.assert_allclose(predictor.run(images), expected, rtol=1e-6)


def test_predict_many_of_only_bad_uploads_runs_no_model(predictor: Predictor) -> None:
    assert all(isinstance(r, UnsupportedMediaError) for r in predictor.predict_many([b"x", b"y"]))
    assert predictor.predict_many([]) == []


def test_load_reads_the_input_scaling_from_the_metadata(predictor: Predictor) -> None:
    assert (predictor.spec.background, predictor.spec.ink) == (-0.1, 1.175)


def refused(path: Path, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        Predictor.load(path)


def test_load_refuses_a_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "none.onnx", "cannot read")


def test_load_refuses_a_file_that_is_not_onnx(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"definitely not a model")
    refused(path, "not a loadable ONNX model")


def test_load_refuses_a_truncated_model(tmp_path: Path, shipped_model: Path) -> None:
    path = tmp_path / "half.onnx"
    path.write_bytes(shipped_model.read_bytes()[:50_000])
    refused(path, "not a loadable ONNX model")


def test_load_refuses_renamed_outputs(model_variant) -> None:
    refused(model_variant("renamed", rename={"distances": "scores"}), "first output must be")
    refused(model_variant("no_c3", rename={"c3": "c3x"}), "output 'c3'")


def test_load_refuses_missing_metadata(model_variant) -> None:
    refused(model_variant("no_rejection", {"lenet5.rejection": None}), "lenet5.rejection")


def test_load_refuses_an_unknown_rejection_score(model_variant) -> None:
    rejection = {"score": "margin", "threshold": 1.0}
    refused(model_variant("margin", {"lenet5.rejection": rejection}), "unknown rejection score")


def test_load_refuses_a_non_finite_threshold(model_variant) -> None:
    rejection = {"score": "min_distance", "threshold": float("nan")}  # stored as JSON's NaN
    refused(model_variant("nan", {"lenet5.rejection": rejection}), "finite")


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("lenet5.rbf_bitmaps", [[1, -1]], "lenet5.rbf_bitmaps: Input should be a valid dictionary"),
        ("lenet5.j", "84", "lenet5.j: Input should be a valid number"),
        ("lenet5.rejection", {"score": ["min_distance"], "threshold": 84.0},
         "lenet5.rejection.score: Input should be a valid string"),
        ("lenet5.input", {"shape": ["N", 1, 32, 32], "background": "-0.1", "ink": 1.175},
         "lenet5.input.background: Input should be a valid number"),
        ("lenet5.version", 2026, "lenet5.version: Input should be a valid string"),
    ],
)  # fmt: skip
def test_load_refuses_metadata_of_the_wrong_type(model_variant, key, value, problem) -> None:
    refused(model_variant(f"wrong_{key}", {key: value}), re.escape(problem))


def test_load_refuses_bitmaps_that_are_not_one_per_digit(model_variant, shipped_model) -> None:
    bitmaps = Predictor.load(shipped_model).metadata.rbf_bitmaps.model_dump()
    bitmaps["digits"] = 7
    refused(model_variant("digits_int", {"lenet5.rbf_bitmaps": bitmaps}), "digits")
    bitmaps["digits"] = Predictor.load(shipped_model).metadata.rbf_bitmaps.digits[:9]
    refused(model_variant("nine_digits", {"lenet5.rbf_bitmaps": bitmaps}), "at least 10 items")


def test_load_refuses_metadata_that_is_not_json(model_variant) -> None:
    refused(model_variant("notjson", {"lenet5.j": b"{oops"}), "not JSON")


def test_load_refuses_a_model_that_misreads_a_real_digit(model_variant) -> None:
    # Inverted input scaling: the network sees a negative of every digit.
    spec = {"name": "image", "shape": ["N", 1, 32, 32], "background": 1.175, "ink": -0.1}
    refused(model_variant("inverted", {"lenet5.input": spec}), "reads a real MNIST 7")


def test_load_accepts_extra_metadata_keys(model_variant) -> None:
    path = model_variant("extra", {"lenet5.rejection": {
        "score": "min_distance", "threshold": 20.0, "validation_digits_accepted": 0.99, "new": 1,
    }, "lenet5.future": {"anything": True}})  # fmt: skip
    predictor = Predictor.load(path)
    assert predictor.threshold == 20.0
    assert json.dumps(predictor.describe())
