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
    threshold: float | None = Field(
        None,
        description="the rejection threshold this image was judged by: lenet5.rejection's "
        "low_resolution_threshold for a scan smaller than the model's frame, else its threshold",
    )


# A real answer (MNIST test digit 0, a 7), captured from the service; checked as the reading is.
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
    "box": [6, 7, 16, 20],
    "version": "2026.12.03-8a31a882",
    "sha256": "9e987af09d29d2cc09372aaf1762f6d6423d9ebd43219944ee4f6acb57884380",
}  # fmt: skip


# A real answer for a 396 written with MNIST test digits (training.numbers.make_number, 3 digits,
# seed 2026), captured from the service; tests/test_api.py checks that it still is.
EXAMPLE_READING: dict[str, Any] = {
    "text": "396",
    "digits": [
        {
            "digit": 3,
            "distances": {
                "0": 112.03750610351562,
                "1": 101.16482543945312,
                "2": 93.0348129272461,
                "3": 80.6205825805664,
                "4": 128.34254455566406,
                "5": 96.16947937011719,
                "6": 110.27618408203125,
                "7": 102.77909851074219,
                "8": 95.0644760131836,
                "9": 94.38176727294922,
            },
            "probabilities": {
                "0": 2.1940788193020183e-14,
                "1": 1.1566379584890902e-09,
                "2": 3.926603168669155e-06,
                "3": 0.9670495993805528,
                "4": 1.819969030891388e-21,
                "5": 1.7086325437493652e-07,
                "6": 1.2769816593216654e-13,
                "7": 2.3021178576773077e-10,
                "8": 5.158762501881371e-07,
                "9": 1.021038628807554e-06,
                "none": 0.03294476485114591,
            },
            "confidence": 0.9670495993805528,
            "rejected": False,
            "box": [35, 66, 49, 83],
        },
        {
            "digit": 9,
            "distances": {
                "0": 97.15461730957031,
                "1": 107.65354919433594,
                "2": 95.07498168945312,
                "3": 101.79437255859375,
                "4": 90.49593353271484,
                "5": 102.5888671875,
                "6": 124.4481201171875,
                "7": 103.20033264160156,
                "8": 90.33503723144531,
                "9": 70.05184936523438,
            },
            "probabilities": {
                "0": 1.6959656657652016e-12,
                "1": 4.6750781217097526e-17,
                "2": 1.357035878459181e-11,
                "3": 1.6383132883758855e-14,
                "4": 1.3220463360744209e-09,
                "5": 7.402055219207859e-15,
                "6": 2.3768369739492405e-24,
                "7": 4.016023523724787e-15,
                "8": 1.5528269245319688e-09,
                "9": 0.9999991213303532,
                "none": 8.757794794962456e-07,
            },
            "confidence": 0.9999991213303532,
            "rejected": False,
            "box": [90, 53, 57, 96],
        },
        {
            "digit": 6,
            "distances": {
                "0": 132.20628356933594,
                "1": 127.7145004272461,
                "2": 145.2432098388672,
                "3": 132.9353790283203,
                "4": 146.31117248535156,
                "5": 106.32870483398438,
                "6": 73.47602844238281,
                "7": 163.58218383789062,
                "8": 116.3905029296875,
                "9": 130.12290954589844,
            },
            "probabilities": {
                "0": 3.117185174817605e-26,
                "1": 2.7830386299912403e-24,
                "2": 6.790432902843034e-32,
                "3": 1.5035589753667493e-26,
                "4": 2.333926515472769e-32,
                "5": 5.398240782447679e-15,
                "6": 0.9999731165160982,
                "7": 7.368553663047156e-40,
                "8": 2.303927777421116e-19,
                "9": 2.503574066398033e-25,
                "none": 2.6883483896516925e-05,
            },
            "confidence": 0.9999731165160982,
            "rejected": False,
            "box": [192, 48, 71, 98],
        },
    ],
    "rejected": False,
    "reason": None,
    "confidence": 0.967022752023929,
    "version": "2026.12.03-8a31a882",
    "sha256": "9e987af09d29d2cc09372aaf1762f6d6423d9ebd43219944ee4f6acb57884380",
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
                        "2026.12.03-8a31a882": {"count": 3, "agreed": 1, "agreement": 1 / 3}
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
