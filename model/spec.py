"""The contract between the network, its training, its export and the service, without torch.

Everything that more than one side must agree on is defined here once: the input's geometry
and value range, the squashing's constants, the digits, the names and per-image shapes of the
exported file's input and outputs, and the `lenet5.*` metadata that file carries
(`ModelMetadata`: the exporter writes it through this model, the service reads and validates
it through the same one). numpy and pydantic only, so the service can import it.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, field_validator

DIGITS = tuple(str(i) for i in range(10))

# f(a) = A·tanh(S·a), so that f(±1) = ±1 (Appendix A).
SQUASH_A = 1.7159
SQUASH_S = 2.0 / 3.0


@dataclass(frozen=True)
class InputSpec:
    """Geometry and value range of the model input, and of the MNIST framing that produces it.

    The paper scales the input so that the background is −0.1 and full ink 1.175, which gives
    inputs of mean roughly 0 and variance roughly 1 (Section II-B). MNIST size-normalises a
    digit into a 20×20 box, centres it by mass in a 28×28 frame, and LeNet-5 reads that frame
    padded to 32×32.
    """

    background: float = -0.1  # model value of paper (grey level 0)
    ink: float = 1.175  # model value of full ink (grey level 255)
    size: int = 32
    frame: int = 28
    digit_box: int = 20

    @cached_property
    def levels(self) -> np.ndarray:
        """The float32 model value of each grey level 0..255: the one mapping from MNIST's
        grey levels to the network's input, used by training and the service alike."""
        step = (self.ink - self.background) / 255
        table = self.background + np.arange(256, dtype=np.float32) * step
        table.flags.writeable = False
        return table


INPUT = InputSpec()

INPUT_NAME = "image"
INPUT_SHAPE = (1, INPUT.size, INPUT.size)  # per image, after the batch dimension
# The network's outputs in the order the exported file has them, with their per-image shapes.
OUTPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "distances": (len(DIGITS),),
    "c1": (6, 28, 28),
    "s2": (6, 14, 14),
    "c3": (16, 10, 10),
    "s4": (16, 5, 5),
    "c5": (120, 1, 1),
    "f6": (84,),
}
OUTPUT_NAMES = tuple(OUTPUT_SHAPES)
ACTIVATIONS = OUTPUT_NAMES[1:]  # c1 … f6, the explain view's layers

# Scores a model's rejection may name: distances of one image -> score, rejected above the
# threshold. A model that names another score is refused rather than misread.
SCORES: dict[str, Callable[[Sequence[float]], float]] = {"min_distance": min}

METADATA_PREFIX = "lenet5."  # every key of the model file's metadata that the service reads

Shape = list[int | str]  # "N" for the batch dimension


class InputInfo(BaseModel):
    """`lenet5.input`: the input tensor and how an image maps onto it."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(default=INPUT_NAME, description="the input's name in the graph")
    shape: Shape = Field(description="N × 1 × size × size")
    dtype: str = "float32"
    background: FiniteFloat = Field(description="the model value of paper (grey level 0)")
    ink: FiniteFloat = Field(description="the model value of full ink (grey level 255)")
    # Files exported before these were written frame their digits as MNIST does.
    frame: int = Field(default=INPUT.frame, gt=0, description="side of the MNIST frame, in pixels")
    digit_box: int = Field(
        default=INPUT.digit_box, gt=0, description="side of the box a digit is scaled into"
    )

    def spec(self) -> InputSpec:
        # The size is the graph's, which the service checks against INPUT_SHAPE.
        return InputSpec(self.background, self.ink, INPUT.size, self.frame, self.digit_box)


class Layer(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    kind: str
    input_shape: list[int]
    output_shape: list[int]
    kernel_size: list[int] | None
    maps: int
    trainable_parameters: int
    connections: int


Grid = list[list[int]]


class Bitmaps(BaseModel):
    width: int = Field(description="7")
    height: int = Field(description="12")
    digits: Annotated[list[Grid], Field(min_length=len(DIGITS), max_length=len(DIGITS))] = Field(
        description="the 7×12 target code of F6 for each digit 0..9: 12 rows of 7 values ±1"
    )


class Squashing(BaseModel):
    model_config = ConfigDict(extra="allow")

    formula: str
    A: FiniteFloat
    S: FiniteFloat


class Totals(BaseModel):
    model_config = ConfigDict(extra="allow")

    trainable_parameters: int
    connections: int


class Architecture(BaseModel):
    """`lenet5.architecture`: the network as `model.lenet5.describe` computes it."""

    model_config = ConfigDict(extra="allow")

    name: str = "LeNet-5"
    reference: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    layers: list[Layer]
    c3_table: list[list[bool]]
    squashing: Squashing
    rbf_bitmaps: Bitmaps
    totals: Totals


class Rejection(BaseModel):
    """`lenet5.rejection`: when an answer is `rejected`."""

    model_config = ConfigDict(extra="allow")

    score: str = Field(description="what is compared with the threshold: one of SCORES")
    threshold: FiniteFloat
    low_resolution_threshold: FiniteFloat | None = Field(
        None,
        description="the threshold for a digit read from a scan of fewer pixels a side than "
        "the model's frame, calibrated alike on validation digits scanned that small; "
        "`threshold` when absent",
    )

    @field_validator("score")
    @classmethod
    def _known(cls, score: str) -> str:
        if score not in SCORES:
            raise ValueError(
                f"unknown rejection score {score!r}; this service knows {list(SCORES)}"
            )
        return score


class Training(BaseModel):
    model_config = ConfigDict(extra="allow")

    test_error: float = Field(description="measured on the 10,000 MNIST test digits")
    paper_test_error: dict[str, float] = Field(
        description="the paper's results to compare with (LeNet-5: 0.95 %)"
    )
    recipe: str = Field(
        "modern", description="how it was trained: modern, or paper (the paper's own recipe)"
    )


class ModelMetadata(BaseModel):
    """The `lenet5.*` metadata of an exported model file, one JSON document per key.

    Validated strictly at load (`read`): a number given as a string, a list where an object
    belongs or a score the service does not know refuses the file. Keys other than these are
    kept and ignored.
    """

    # Each field is stored under its name with the prefix: `j` is the key "lenet5.j".
    model_config = ConfigDict(
        extra="allow",
        alias_generator=lambda name: METADATA_PREFIX + name,
        validate_by_name=True,
        validate_by_alias=True,
    )

    architecture: Architecture
    input: InputInfo
    outputs: dict[str, Shape]
    j: FiniteFloat = Field(description="the MAP criterion's constant for 'none of these'")
    rbf_bitmaps: Bitmaps
    rejection: Rejection
    training: Training
    version: str
    created: str | None = None

    @classmethod
    def read(cls, documents: dict[str, Any]) -> "ModelMetadata":
        """The metadata from its decoded `lenet5.*` documents; pydantic's ValidationError
        names every key that is missing or wrong."""
        return cls.model_validate(documents, strict=True)

    def documents(self) -> dict[str, Any]:
        """Key -> JSON-ready document, as the file stores them (each then JSON-encoded)."""
        return self.model_dump(mode="json", by_alias=True)
