"""LeNet-5 inference on onnxruntime, without any web framework: upload bytes in, answers out.

A Predictor is immutable once loaded. Reloading builds and checks a new one and swaps the
reference, so a request that holds the old one finishes on it undisturbed.

The answers are plain dicts in the shape of app.schemas, built directly because the service
sends them straight to JSON: validating them again on every request would only cost time.
"""

import base64
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
from pydantic import ValidationError

from app.errors import RequestError
from app.imaging import Prepared, to_model_inputs
from app.imaging.decode import DEFAULT_DECODE_MEMORY
from model.spec import (
    ACTIVATIONS,
    DIGITS,
    INPUT_NAME,
    INPUT_SHAPE,
    METADATA_PREFIX,
    OUTPUT_NAMES,
    OUTPUT_SHAPES,
    SCORES,
    InputSpec,
    ModelMetadata,
)

EXPLAIN_DECIMALS = 4

# MNIST test digit 0, a 7, as the 28×28 PNG MNIST stores: every model must read it before it
# serves, which catches a file whose input scaling or wiring is off, not only a corrupt one.
SMOKE_DIGIT = 7
SMOKE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAABwAAAAcCAAAAABXZoBIAAAAwUlEQVR42mNgGDaAEUKFpD77sfTFHeyS9xQYGBg+X4"
    "UKPuk6w8DAwMDAAuGm6l/TMnSweCzLwPDntSTDozPIOhkYGBgYBA3PmDIw/Lh1XShnGi5nBP+9KIRLTuzl/2AokwlD"
    "Mlv0/U1cGq1//rPD6fHWf7tZcclxnv1hhVNj3b9tOOW8f3+wxCUnfPffMlxyzKf/3VbGJan2758vLjn5B/+KGXF78Z"
    "8JLjnbT+iSSGFrw8Nw9wuKJAsy56LzO+ITGABpETyQcCy90wAAAABJRU5ErkJggg=="
)


class ModelError(Exception):
    """A model file the service will not serve; the message says why."""


@dataclass(frozen=True)
class Predictor:
    """One loaded, checked model: preprocess → onnxruntime → the API's answer."""

    session: ort.InferenceSession  # every output: the explain view
    distances_session: ort.InferenceSession  # `distances` alone: every other answer
    path: Path
    sha256: str
    metadata: ModelMetadata
    spec: InputSpec
    max_pixels: int | None = None  # most pixels an upload may have (Settings.max_image_pixels)
    max_decode_bytes: int = DEFAULT_DECODE_MEMORY  # Settings.decode_memory_bytes
    version: str = field(init=False)
    j: float = field(init=False)
    score: Callable[[list[float]], float] = field(init=False)
    threshold: float = field(init=False)
    low_resolution_threshold: float = field(init=False)

    def __post_init__(self) -> None:
        meta = self.metadata
        set_ = object.__setattr__  # frozen: derived fields are set once, here
        set_(self, "version", meta.version)
        set_(self, "j", meta.j)
        set_(self, "score", SCORES[meta.rejection.score])
        set_(self, "threshold", meta.rejection.threshold)
        low = meta.rejection.low_resolution_threshold
        set_(self, "low_resolution_threshold", self.threshold if low is None else low)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        threads: int = 1,
        max_pixels: int | None = None,
        max_decode_bytes: int = DEFAULT_DECODE_MEMORY,
    ) -> "Predictor":
        """Open and check the model at `path`; ModelError says what is wrong with it."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read the model file {path}: {exc.strerror or exc}") from exc
        try:
            # From the bytes just hashed, so sha256 names exactly the model that serves even
            # when the file is replaced meanwhile.
            session = ort.InferenceSession(
                data, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for every kind of bad file
            raise ModelError(f"{path} is not a loadable ONNX model: {exc}") from exc
        check_signature(session)
        metadata = read_metadata(session)
        spec = metadata.input.spec()
        try:
            distances_session = ort.InferenceSession(
                distances_only(data), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnx raises its own types for a graph it cannot cut
            raise ModelError(f"{path}: cannot cut the graph down to `distances`: {exc}") from exc
        sha256 = hashlib.sha256(data).hexdigest()
        predictor = cls(session, distances_session, path, sha256, metadata, spec, max_pixels,
                        max_decode_bytes)  # fmt: skip
        predictor.smoke_test()
        return predictor

    def smoke_test(self) -> None:
        distances = self.run(self.preprocess(SMOKE_PNG)[None])[0]
        if not np.isfinite(distances).all():
            raise ModelError(f"{self.path}: the model gives non-finite distances for a digit")
        if int(distances.argmin()) != SMOKE_DIGIT:
            raise ModelError(
                f"{self.path}: the model reads a real MNIST {SMOKE_DIGIT} as "
                f"{int(distances.argmin())}; refusing to serve it"
            )

    def preprocess(self, data: bytes) -> np.ndarray:
        """The upload as the (1, 32, 32) model input; RequestError if it cannot be."""
        return self.prepare(data).inputs[0]

    def prepare(self, data: bytes, explain: bool = False) -> Prepared:
        """The one upload through the imaging pipeline; RequestError if it cannot be read."""
        prepared = to_model_inputs([data], *self.limits(), explain)
        if prepared.errors:
            raise prepared.errors[0]
        return prepared

    def limits(self) -> tuple[InputSpec, int | None, int]:
        """to_model_inputs' arguments after the uploads, for running it elsewhere."""
        return self.spec, self.max_pixels, self.max_decode_bytes

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, 1, 32, 32) inputs -> (N, 10) RBF distances."""
        return self.distances_session.run(["distances"], {INPUT_NAME: images})[0]

    def predict(self, data: bytes) -> dict[str, Any]:
        """The answer for one upload."""
        return self.answers(self.prepare(data), 1)[0]  # type: ignore[return-value]

    def explain(self, data: bytes) -> dict[str, Any]:
        """The answer plus what the network sees, every layer's activations and the ink."""
        return self.explain_input(self.prepare(data, explain=True))

    def explain_input(self, prepared: Prepared) -> dict[str, Any]:
        """explain() of one upload already prepared, its ink map with it."""
        image = prepared.inputs[:1]
        distances, *activations = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})
        result = self.answer(distances[0], prepared.boxes[0], prepared.low_resolution[0])
        layers = {name: value[0] for name, value in zip(ACTIVATIONS, activations, strict=True)}
        layers["c5"] = layers["c5"].reshape(-1)  # 120 maps of 1×1: a vector, as F6 reads it
        result["explain"] = {
            "input": _rounded(image[0, 0]),
            "activations": {name: _rounded(value) for name, value in layers.items()},
            "threshold": self.threshold_for(prepared.low_resolution[0]),
        }
        if prepared.inks:
            result["explain"]["ink"] = prepared.inks[0]
        return result

    def predict_many(self, uploads: Sequence[bytes]) -> list[dict[str, Any] | RequestError]:
        """One answer per upload, in order, through one onnxruntime call; an upload that
        cannot be read gets its RequestError in its place."""
        return self.answers(to_model_inputs(uploads, *self.limits()), len(uploads))

    def answers(self, prepared: Prepared, count: int) -> list[dict[str, Any] | RequestError]:
        """predict_many's answers from to_model_inputs' result for `count` uploads."""
        inputs, errors = prepared.inputs, prepared.errors
        distances = self.run(inputs) if len(inputs) else ()
        rows = iter(zip(distances, prepared.boxes, prepared.low_resolution, strict=True))
        return [errors[i] if i in errors else self.answer(*next(rows)) for i in range(count)]

    def answer(
        self, distances: np.ndarray, box: list[int] | None = None, low_resolution: bool = False
    ) -> dict[str, Any]:
        """The API's answer from one image's ten RBF distances; `low_resolution` when the
        image was a scan that small (Prepared.low_resolution), judged by that threshold.

        The paper's MAP reading: P(i) ∝ exp(−y_i), with a "none of these" class of
        exp(−j). Shifting by the smallest of the y_i and j (the log-sum-exp trick) keeps the
        exponentials in range whatever the distances.
        """
        y = distances.tolist()
        digit = min(range(10), key=y.__getitem__)
        low = min(y[digit], self.j)
        weights = [math.exp(low - v) for v in y]
        none = math.exp(low - self.j)
        total = sum(weights) + none
        probabilities = dict(zip(DIGITS, [w / total for w in weights], strict=True))
        probabilities["none"] = none / total
        return {
            "digit": digit,
            "distances": dict(zip(DIGITS, y, strict=True)),
            "probabilities": probabilities,
            "confidence": probabilities[DIGITS[digit]],
            "rejected": self.score(y) > self.threshold_for(low_resolution),
            "box": box,
            "version": self.version,
            "sha256": self.sha256,
        }

    def threshold_for(self, low_resolution: bool) -> float:
        """The rejection threshold for an image read from a low-resolution scan, or not."""
        return self.low_resolution_threshold if low_resolution else self.threshold

    def verdicts(
        self, distances: np.ndarray, low_resolution: Sequence[bool] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """For (N, 10) distances, each image's digit (int64) and whether it is rejected (bool),
        as `answer` reads one image."""
        digits = distances.argmin(axis=1).astype(np.int64)  # the first smallest, as in answer()
        scores = np.array([self.score(row) for row in distances.tolist()], np.float64)
        if low_resolution is None:
            return digits, scores > self.threshold
        thresholds = [self.threshold_for(low) for low in low_resolution]
        return digits, scores > np.array(thresholds, np.float64)

    def describe(self) -> dict[str, Any]:
        """The network as /model shows it, from the model's own metadata."""
        return self._description

    @cached_property
    def _description(self) -> dict[str, Any]:
        meta = self.metadata
        arch = meta.architecture.model_dump(mode="json")
        return {
            "name": arch["name"],
            "reference": arch["reference"],
            "version": self.version,
            "created": meta.created,
            "sha256": self.sha256,
            "input": meta.input.model_dump(mode="json"),
            "outputs": meta.outputs,
            **{key: arch[key] for key in ("layers", "c3_table", "squashing", "rbf_bitmaps")},
            "totals": arch["totals"],
            "j": self.j,
            "rejection": meta.rejection.model_dump(mode="json"),
            "training": meta.training.model_dump(mode="json"),
        }


def distances_only(model: bytes) -> bytes:
    """The model cut down to what its `distances` output needs.

    onnxruntime runs every node of a graph whichever outputs a caller asks for, and the layer
    activations that the explain view reads are a sizeable share of each run (bench/service.py
    times both graphs).
    """
    full = onnx.load_model_from_string(model)
    return onnx.utils.Extractor(full).extract_model([INPUT_NAME], ["distances"]).SerializeToString()


def session_options(threads: int) -> ort.SessionOptions:
    """Options measured on this network (bench/service.py): one intra-op thread and sequential
    execution are fastest for single images, whose ops are far too small to split."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def check_signature(session: ort.InferenceSession) -> None:
    """The input and outputs LeNet-5's exporter writes, by name, type and shape."""
    inputs = session.get_inputs()
    if [i.name for i in inputs] != [INPUT_NAME] or inputs[0].type != "tensor(float)":
        takes = [(i.name, i.type) for i in inputs]
        raise ModelError(f"the model must take one float tensor '{INPUT_NAME}', it takes {takes}")
    if tuple(inputs[0].shape[1:]) != INPUT_SHAPE:
        raise ModelError(
            f"input '{INPUT_NAME}' has shape {inputs[0].shape}, expected [N, 1, 32, 32]"
        )
    outputs = {o.name: tuple(o.shape[1:]) for o in session.get_outputs()}
    if next(iter(outputs), None) != "distances":
        raise ModelError(f"the model's first output must be 'distances', it has {list(outputs)}")
    for name, shape in OUTPUT_SHAPES.items():
        if outputs.get(name) != shape:
            found = f"shape {list(outputs[name])}" if name in outputs else "no such output"
            raise ModelError(f"output '{name}' must be [N, {', '.join(map(str, shape))}]: {found}")


def read_metadata(session: ort.InferenceSession) -> ModelMetadata:
    """The lenet5.* metadata, decoded and validated against ModelMetadata."""
    raw = session.get_modelmeta().custom_metadata_map
    try:
        documents = {key: json.loads(value) for key, value in raw.items()
                     if key.startswith(METADATA_PREFIX)}  # fmt: skip
    except json.JSONDecodeError as exc:
        raise ModelError(f"the model's metadata is not JSON: {exc}") from exc
    try:
        return ModelMetadata.read(documents)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
        )
        raise ModelError(f"the model's metadata does not fit: {problems}") from None


def _rounded(a: np.ndarray) -> list[Any]:
    # In float64, so that 4 decimals print as 4 decimals rather than float32's nearest value.
    return np.round(a.astype(np.float64), EXPLAIN_DECIMALS).tolist()
