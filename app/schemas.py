"""The API's documents, for OpenAPI and for anyone reading /docs.

The hot routes build these as plain dicts (app.predictor) and send them as JSON directly;
tests check that what they send validates against these models.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from model.spec import Bitmaps, InputInfo, Layer, Totals, Training

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
        "0": 128.47415161132812, "1": 100.84847259521484, "2": 90.82923889160156,
        "3": 99.76664733886719, "4": 122.25651550292969, "5": 120.86784362792969,
        "6": 148.28268432617188, "7": 73.59317016601562, "8": 108.34085083007812,
        "9": 95.298828125,
    },
    "probabilities": {
        "0": 1.4637922922359801e-24, "1": 1.4559934174328947e-12, "2": 3.269319176764006e-08,
        "3": 4.295266855273152e-12, "4": 7.341156936601712e-22, "5": 2.9434525615109463e-21,
        "6": 3.6537851245627225e-33, "7": 0.9999697424988214, "8": 8.114483617729456e-16,
        "9": 3.7440305301298993e-10, "none": 3.0224427831660653e-05,
    },
    "confidence": 0.9999697424988214,
    "rejected": False,
    "version": "2026.11.22-8a31a882",
    "sha256": "12a46804d61f23ee6b2b0a6a36ac0a0247e4edc47b8e11f60f437f04f47a89ac",
}  # fmt: skip


# A real answer for a 396 written with MNIST test digits (training.numbers, seed 2026),
# captured from the service.
EXAMPLE_READING: dict[str, Any] = {
    "text": "396",
    "digits": [
        {
            "digit": 3,
            "distances": {
                "0": 114.06966400146484,
                "1": 107.07942962646484,
                "2": 94.37963104248047,
                "3": 79.0862045288086,
                "4": 129.38807678222656,
                "5": 96.39790344238281,
                "6": 111.44219207763672,
                "7": 105.54878997802734,
                "8": 94.55825805664062,
                "9": 97.56066131591797,
            },
            "probabilities": {
                "0": 6.36353372713334e-16,
                "1": 6.91064472454772e-13,
                "2": 2.2644931579400302e-07,
                "3": 0.9927085379174261,
                "4": 1.4157814182738895e-22,
                "5": 3.009168081444428e-08,
                "6": 8.806329033778479e-15,
                "7": 3.1934999935152773e-12,
                "8": 1.894062415225419e-07,
                "9": 9.407346015825944e-09,
                "none": 0.007291006724095374,
            },
            "confidence": 0.9927085379174261,
            "rejected": False,
            "box": [35, 66, 49, 83],
        },
        {
            "digit": 9,
            "distances": {
                "0": 97.41374969482422,
                "1": 112.52133178710938,
                "2": 97.22911834716797,
                "3": 101.60433197021484,
                "4": 91.2735595703125,
                "5": 101.446044921875,
                "6": 124.95941162109375,
                "7": 103.81510925292969,
                "8": 93.10836029052734,
                "9": 70.74339294433594,
            },
            "probabilities": {
                "0": 2.6134275968720782e-12,
                "1": 7.179115413074309e-19,
                "2": 3.143365253901909e-12,
                "3": 3.956067696095686e-14,
                "4": 1.2130010078130054e-09,
                "5": 4.63454289656935e-14,
                "6": 2.8463054071746646e-24,
                "7": 4.336459952649263e-15,
                "8": 1.9364992517587525e-10,
                "9": 0.9999982498366189,
                "none": 1.7487508833598549e-06,
            },
            "confidence": 0.9999982498366189,
            "rejected": False,
            "box": [90, 53, 57, 96],
        },
        {
            "digit": 6,
            "distances": {
                "0": 132.13943481445312,
                "1": 127.53974914550781,
                "2": 144.5066680908203,
                "3": 133.30795288085938,
                "4": 145.8456573486328,
                "5": 106.2796859741211,
                "6": 73.90460968017578,
                "7": 163.39768981933594,
                "8": 116.87273406982422,
                "9": 130.80014038085938,
            },
            "probabilities": {
                "0": 5.115862541817073e-26,
                "1": 5.0878813084330695e-24,
                "2": 2.177196856318291e-31,
                "3": 1.5901493595705585e-26,
                "4": 5.70666071348955e-32,
                "5": 8.702922009751582e-15,
                "6": 0.99995873234712,
                "7": 1.360289057037162e-39,
                "8": 2.183548069824263e-19,
                "9": 1.9523921330783127e-25,
                "none": 4.1267652871448516e-05,
            },
            "confidence": 0.99995873234712,
            "rejected": False,
            "box": [192, 48, 71, 98],
        },
    ],
    "rejected": False,
    "reason": None,
    "confidence": 0.9926658338356396,
    "version": "2026.11.22-8a31a882",
    "sha256": "12a46804d61f23ee6b2b0a6a36ac0a0247e4edc47b8e11f60f437f04f47a89ac",
}


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


class ModelInfo(BaseModel):
    """The network that serves, as its file describes it."""

    name: str
    reference: str | None
    version: str
    created: str | None
    sha256: str = Field(description="SHA-256 of the model file")
    input: InputInfo
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


class FeedbackStored(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 17, "duplicate": False, "label": "4"}]}
    )

    id: int = Field(description="the record's id (DELETE /feedback/{id} removes it)")
    duplicate: bool = Field(
        description="true when the same image with the same label was stored already: "
        "the answer names that record and nothing new is stored (status 200 instead of 201)"
    )
    label: str = Field(description="the label as stored: 0 … 9 or none")


class VersionAgreement(BaseModel):
    count: int = Field(description="corrections read by this model version")
    agreed: int = Field(
        description="of them, those it read as the label says (a digit read and accepted, "
        "or a non-digit rejected)"
    )
    agreement: float = Field(description="agreed / count")


class FeedbackStats(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "total": 3,
                    "by_label": {"4": 2, "none": 1},
                    "by_model_version": {
                        "2026.11.22-8a31a882": {"count": 3, "agreed": 1, "agreement": 1 / 3}
                    },
                }
            ]
        }
    )

    total: int
    by_label: dict[str, int] = Field(description="corrections by label, 0 … 9 and none")
    by_model_version: dict[str, VersionAgreement] = Field(
        description="how often the model that read each correction agreed with it"
    )


class FeedbackRecord(BaseModel):
    id: int
    sha256: str = Field(description="sha256 of the upload followed by the label (the dedupe key)")
    image_sha256: str
    label: str
    predicted: str | None = Field(description="what the client says the service answered")
    version: str | None = Field(description="the model version the client names")
    source: str | None
    model_digit: int = Field(description="the digit the serving model read when it was stored")
    model_rejected: bool
    model_version: str
    model_sha256: str
    created: str
    frame_png: str = Field(description="the 28×28 frame the service made of it, base64 PNG")


class FeedbackPage(BaseModel):
    records: list[FeedbackRecord]
    next_after: int | None = Field(
        description="pass as `after` for the next page; null on the last page"
    )


class ReadDigit(BaseModel):
    """One digit of a number, as /predict would answer its piece alone."""

    digit: int = Field(ge=0, le=9)
    box: list[int] = Field(description="[x, y, w, h] of its ink, in the uploaded image's pixels")
    distances: DigitScores
    probabilities: Probabilities
    confidence: float = Field(ge=0, le=1)
    rejected: bool = Field(description="true when this piece is not confidently a digit")


class InkMap(BaseModel):
    png: str = Field(description="the cleaned ink map, white on black, as a PNG data URL")
    width: int
    height: int


class ScoredPiece(BaseModel):
    box: list[int] = Field(description="[x, y, w, h], uploaded image's pixels")
    digit: int = Field(description="the nearest digit")
    distances: DigitScores
    cost: float = Field(description="−log P(digit) of the MAP reading, 'none' included")


class SegmentationView(BaseModel):
    cuts: list[int] = Field(description="x of each candidate cut made inside a component")
    pieces: list[ScoredPiece] = Field(description="every candidate piece LeNet-5 scored")
    path: list[int] = Field(description="indices of the pieces read, left to right")
    score: float = Field(description="the path's total cost, piece costs included")


class ReadExplanation(BaseModel):
    ink: InkMap
    segmentation: SegmentationView


class Reading(BaseModel):
    """The number written on one line: its digits left to right."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_READING]})

    text: str = Field(description="the digits read, left to right")
    digits: list[ReadDigit]
    rejected: bool = Field(
        description="true when some piece of the line is not confidently a digit"
    )
    reason: str | None = Field(description="which pieces were not read, when rejected")
    confidence: float = Field(ge=0, le=1, description="the product of the digits' confidences")
    version: str
    sha256: str
    explain: ReadExplanation | None = Field(
        None, description="only with ?explain=true: the ink map and the segmentation graph"
    )
