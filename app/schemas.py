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
        "0": 125.50535583496094, "1": 102.26538848876953, "2": 90.29499053955078,
        "3": 97.40320587158203, "4": 120.51080322265625, "5": 116.34192657470703,
        "6": 144.9948272705078, "7": 74.45344543457031, "8": 104.97322845458984,
        "9": 93.1994400024414,
    },
    "probabilities": {
        "0": 6.736059801799487e-23, "1": 8.344407642663875e-13, "2": 1.3184792147156668e-07,
        "3": 1.078982976773176e-10, "4": 9.942888590886424e-21, "5": 6.427361057975793e-19,
        "6": 2.313321714402616e-31, "7": 0.9999284189295921, "8": 5.564108077317689e-14,
        "9": 7.222489397988871e-09, "none": 7.144189120856521e-05,
    },
    "confidence": 0.9999284189295921,
    "rejected": False,
    "box": [6, 7, 16, 20],
    "version": "2026.12.07-25e23c15",
    "sha256": "e0a3889193cd31e2d63c98832c3c9d6305da9e01fd26e65987278399b135a5c1",
}  # fmt: skip


# A real answer for a 396 written with MNIST test digits (training.numbers.make_number, 3 digits,
# seed 2026), captured from the service; tests/test_api.py checks that it still is.
EXAMPLE_READING: dict[str, Any] = {
    "text": "396",
    "digits": [
        {
            "digit": 3,
            "distances": {
                "0": 111.0315933227539,
                "1": 98.37554931640625,
                "2": 91.54383087158203,
                "3": 80.67415618896484,
                "4": 126.8873291015625,
                "5": 95.28022003173828,
                "6": 110.54163360595703,
                "7": 100.83045959472656,
                "8": 93.83222961425781,
                "9": 93.08490753173828,
            },
            "probabilities": {
                "0": 6.318098025039069e-14,
                "1": 1.981693269470087e-08,
                "2": 1.836597787795656e-05,
                "3": 0.965281074958133,
                "4": 8.213491356207563e-21,
                "5": 4.378454715762394e-07,
                "6": 1.0312718447839789e-13,
                "7": 1.7016978373487258e-09,
                "8": 1.8628380944223299e-06,
                "9": 3.933081693482417e-06,
                "none": 0.034694303779932635,
            },
            "confidence": 0.965281074958133,
            "rejected": False,
            "box": [35, 66, 49, 83],
        },
        {
            "digit": 9,
            "distances": {
                "0": 96.94136047363281,
                "1": 102.31444549560547,
                "2": 93.06365203857422,
                "3": 100.39112091064453,
                "4": 89.02776336669922,
                "5": 100.57392883300781,
                "6": 121.77447509765625,
                "7": 101.26819610595703,
                "8": 89.70082092285156,
                "9": 70.78945922851562,
            },
            "probabilities": {
                "0": 4.389072904399697e-12,
                "1": 2.036439999862704e-14,
                "2": 2.1205092462794354e-10,
                "3": 1.393672957068767e-13,
                "4": 1.2000638410262797e-08,
                "5": 1.1608294061154317e-13,
                "6": 7.202580900455367e-23,
                "7": 5.797649489264593e-14,
                "8": 6.122082357080688e-09,
                "9": 0.999998150467011,
                "none": 1.8311934942871362e-06,
            },
            "confidence": 0.999998150467011,
            "rejected": False,
            "box": [90, 53, 57, 96],
        },
        {
            "digit": 6,
            "distances": {
                "0": 128.0858154296875,
                "1": 125.38003540039062,
                "2": 141.67782592773438,
                "3": 130.6773681640625,
                "4": 140.18820190429688,
                "5": 104.67636108398438,
                "6": 72.65707397460938,
                "7": 159.4210662841797,
                "8": 113.2442855834961,
                "9": 126.72642517089844,
            },
            "probabilities": {
                "0": 8.464441338731513e-25,
                "1": 1.2667871096507419e-23,
                "2": 1.0584324403577877e-30,
                "3": 6.340175030614013e-26,
                "4": 4.694600446689261e-30,
                "5": 1.242210358037127e-14,
                "6": 0.9999881470986101,
                "7": 2.083875479178212e-38,
                "8": 2.3615264529164997e-18,
                "9": 3.295899706056025e-24,
                "none": 1.1852901377578905e-05,
            },
            "confidence": 0.9999881470986101,
            "rejected": False,
            "box": [192, 48, 71, 98],
        },
    ],
    "rejected": False,
    "reason": None,
    "confidence": 0.9652678482787074,
    "version": "2026.12.07-25e23c15",
    "sha256": "e0a3889193cd31e2d63c98832c3c9d6305da9e01fd26e65987278399b135a5c1",
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
                        "2026.12.07-25e23c15": {"count": 3, "agreed": 1, "agreement": 1 / 3}
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
