"""The API's documents, for OpenAPI and for anyone reading /docs.

The hot routes build these as plain dicts (app.predictor) and send them as JSON directly;
tests check that what they send validates against these models.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

# Keys "0".."9": one entry per digit, named by the digit.
DigitScores = TypedDict(
    "DigitScores",
    {"0": float, "1": float, "2": float, "3": float, "4": float,
     "5": float, "6": float, "7": float, "8": float, "9": float},
)  # fmt: skip
Probabilities = TypedDict(
    "Probabilities",
    {"0": float, "1": float, "2": float, "3": float, "4": float,
     "5": float, "6": float, "7": float, "8": float, "9": float, "none": float},
)  # fmt: skip

Grid = list[list[float]]
Maps = list[list[list[float]]]


class Activations(BaseModel):
    c1: Maps = Field(description="C1: 6 feature maps of 28×28")
    s2: Maps = Field(description="S2: 6 maps of 14×14")
    c3: Maps = Field(description="C3: 16 maps of 10×10, wired by Table I")
    s4: Maps = Field(description="S4: 16 maps of 5×5")
    c5: list[float] = Field(description="C5: 120 units (maps of 1×1)")
    f6: list[float] = Field(description="F6: 84 units, compared with the RBF bitmaps")


class Explanation(BaseModel):
    input: Grid = Field(description="the 32×32 image the network sees (background −0.1, ink 1.175)")
    activations: Activations


# A real answer (MNIST test digit 0, a 7), captured from the service.
EXAMPLE_PREDICTION: dict[str, Any] = {
    "digit": 7,
    "distances": {
        "0": 161.06625366210938, "1": 118.76089477539062, "2": 67.63241577148438,
        "3": 106.54962158203125, "4": 138.40170288085938, "5": 149.62347412109375,
        "6": 181.062744140625, "7": 0.6886730790138245, "8": 126.46977996826172,
        "9": 126.8475112915039,
    },
    "probabilities": {
        "0": 2.2035052425038255e-70, "1": 5.2011335764149745e-52, "2": 8.335167027811497e-30,
        "3": 1.0456505553144988e-46, "4": 1.5353359787878328e-60, "5": 2.054234886290335e-65,
        "6": 4.557730229424277e-79, "7": 0.9867618631940959, "8": 2.3343808220931383e-55,
        "9": 1.6000187695778704e-55, "none": 0.013238136805904167,
    },
    "confidence": 0.9867618631940959,
    "rejected": False,
    "version": "2026.11.22-bc1d8b22",
    "sha256": "6d7f2b5c1a2a355e0521ac5aaa82d2b24c5099c973d3aeacacdf8e4004d344a1",
}  # fmt: skip


class Prediction(BaseModel):
    """What LeNet-5 makes of one image."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PREDICTION]})

    digit: int = Field(ge=0, le=9, description="the digit with the smallest RBF distance")
    distances: DigitScores = Field(
        description="the ten RBF outputs y_i: squared Euclidean distance of F6 to each digit's "
        "7×12 bitmap; the smaller, the more the image looks like that digit"
    )
    probabilities: Probabilities = Field(
        description="the paper's MAP reading: P(i) ∝ exp(−y_i), with 'none' ∝ exp(−j) for "
        "'none of these digits'; they sum to 1"
    )
    confidence: float = Field(ge=0, le=1, description="the probability of `digit`")
    rejected: bool = Field(
        description="true when the image is not confidently one digit, by the score and "
        "threshold in the model's metadata (lenet5.rejection)"
    )
    version: str = Field(description="version of the model that answered")
    sha256: str = Field(description="SHA-256 of that model file")
    explain: Explanation | None = Field(
        None, description="only with ?explain=true: the network's input and every layer"
    )


class ErrorBody(BaseModel):
    status: int = Field(description="the HTTP status this image would have had alone")
    detail: str


class BatchError(BaseModel):
    """In place of an image of a batch that could not be read."""

    error: ErrorBody
    filename: str | None = Field(None, description="the part's filename, when it had one")


class BatchPrediction(BaseModel):
    """One entry per uploaded image, in upload order."""

    results: list[Prediction | BatchError]


class Error(BaseModel):
    """Every error the service answers."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "the image contains no ink: it looks blank"}]}
    )

    detail: str = Field(description="what went wrong, for a person to read")


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


class Bitmaps(BaseModel):
    width: int = Field(description="7")
    height: int = Field(description="12")
    digits: list[list[list[int]]] = Field(
        description="the 7×12 target code of F6 for each digit 0..9: 12 rows of 7 values ±1"
    )


class Totals(BaseModel):
    model_config = ConfigDict(extra="allow")

    trainable_parameters: int
    connections: int


class Training(BaseModel):
    model_config = ConfigDict(extra="allow")

    test_error: float = Field(description="measured on the 10,000 MNIST test digits")
    paper_test_error: dict[str, float] = Field(
        description="the paper's results to compare with (LeNet-5: 0.95 %)"
    )


class ModelInfo(BaseModel):
    """The network that serves, as its file describes it."""

    name: str
    reference: str | None
    version: str
    created: str | None
    sha256: str = Field(description="SHA-256 of the model file")
    input: dict[str, Any] = Field(description="name, shape, dtype, background and ink values")
    outputs: dict[str, list[int | str]] = Field(description="every output's shape")
    layers: list[Layer]
    c3_table: list[list[bool]] = Field(
        description="Table I: which of S2's 6 maps (rows) feed each of C3's 16 maps (columns)"
    )
    squashing: dict[str, Any] = Field(description="f(a) = A tanh(S a) and its constants")
    rbf_bitmaps: Bitmaps
    totals: Totals
    j: float = Field(description="the MAP criterion's constant for 'none of these'")
    rejection: dict[str, Any] = Field(description="score and threshold behind `rejected`")
    training: Training


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(examples=["ready"])
    version: str
    sha256: str


class Reloaded(BaseModel):
    """The model now serving, after a reload."""

    version: str
    sha256: str
    changed: bool = Field(description="false when the file was the one already serving")
    previous_version: str
    previous_sha256: str
