"""The demo page in a real browser: Debian's headless Chromium driven by Playwright.

The real app serves the shipped model on a free loopback port; the tests draw digits and numbers
with the mouse, upload and drop real MNIST test digits and photos made of them, and read what the
page shows. Screenshots go to test-artifacts/ for a person to look at.

Only Debian's Chromium is used (`apt-get install chromium`): nothing here downloads a browser.
Without it the tests skip, except under CI, where a missing browser is a broken setup.
"""

import base64
import io
import math
import os
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
# Until the page has the latest answer: a prediction is neither scheduled nor in flight.
SETTLED = "document.body.dataset.busy === 'false'"
ANSWERED = "#result[data-state=accepted], #result[data-state=rejected]"

# Strokes in fractions of the canvas (x, y), drawn as a person would: shapes any correct
# recognizer must read as their digit, whatever its training run.
ONE = [[(0.5, 0.14), (0.5, 0.86)]]
SEVEN = [[(0.24, 0.18), (0.76, 0.18), (0.42, 0.86)]]
ZERO = [
    [
        (0.5 + 0.22 * math.sin(2 * math.pi * i / 32), 0.5 - 0.32 * math.cos(2 * math.pi * i / 32))
        for i in range(33)
    ]
]


def need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Debian's Chromium is not installed ({CHROMIUM}): apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(message + "; .ci/run must install it")
    pytest.skip(message)


TOKEN = "test-token"  # conftest.service_settings' reload token


@pytest.fixture(scope="module")
def browser():
    need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server_url: str):
    """The demo page, loaded, with the model description shown; fails on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []

    def foreign_request(request) -> None:
        # The page must work offline: it asks nothing of any other host.
        if not request.url.startswith((server_url, "data:", "blob:")):
            errors.append(f"request to {request.url}")

    def failed_asset(response) -> None:
        # 4xx answers to /predict and /read are part of the tests; a missing asset is not.
        if response.status >= 400 and not any(r in response.url for r in ("/predict", "/read")):
            errors.append(f"{response.status} for {response.url}")

    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", foreign_request)
    page.on("response", failed_asset)
    page.goto(server_url + "/")
    page.wait_for_selector("#layer-table tbody tr")
    yield page
    context.close()
    assert not errors, f"errors in the page: {errors}"


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)


def draw(page, strokes: list[list[tuple[float, float]]], answered: str = ANSWERED) -> None:
    """Draw strokes with the mouse, then wait for the answer to the finished drawing."""
    box = page.get_by_test_id("canvas").bounding_box()

    def at(fx: float, fy: float) -> tuple[float, float]:
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    for stroke in strokes:
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(*point), steps=6)
        page.mouse.up()
    page.wait_for_selector(answered)
    page.wait_for_function(SETTLED)


def shown(page) -> tuple[str, bool]:
    """The digit the page shows and whether it says the input was rejected."""
    prediction = page.get_by_test_id("prediction")
    return prediction.inner_text().strip(), prediction.get_attribute("data-rejected") == "true"


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_inside_view(page, digit: str) -> None:
    """Every layer of the inside view is drawn, and the distance chart marks `digit`."""
    expected_maps = {"input": 1, "c1": 6, "s2": 6, "c3": 16, "s4": 16, "c5": 1}
    layers = page.locator("#layers")
    assert layers.get_attribute("data-state") == "shown"
    for layer, count in expected_maps.items():
        assert layers.locator(f"[data-testid=layer-{layer}] canvas").count() == count, layer
    # F6 as a picture beside the winning digit's bitmap.
    assert page.locator("[data-testid=layer-f6] canvas").count() == 2
    assert f"bitmap of {digit}" in page.locator("[data-testid=layer-f6]").inner_text()
    # The preprocessed input has ink on it: some pixel darker than paper.
    darkest = page.evaluate(
        """() => {
            const c = document.querySelector('[data-testid=layer-input] canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let m = 255; for (let i = 0; i < d.length; i += 4) m = Math.min(m, d[i]); return m;
        }"""
    )
    assert darkest < 64
    bars = page.locator("[data-testid=distances] .bar-row")
    assert bars.count() == 10
    assert page.locator("[data-testid=distances] .bar-row.winner").get_attribute("data-digit") == (
        digit
    )


@pytest.mark.parametrize(
    ("name", "strokes", "digit"),
    [("one", ONE, "1"), ("seven", SEVEN, "7"), ("zero", ZERO, "0")],
)
def test_drawn_digit_is_recognised(page, name: str, strokes, digit: str) -> None:
    draw(page, strokes)
    shot(page, f"drawn-{name}")
    assert shown(page) == (digit, False)
    assert page.get_by_test_id("status").inner_text().endswith(digit)
    assert_inside_view(page, digit)


def test_answers_while_the_pen_is_down(page) -> None:
    """Predictions follow the stroke (debounced), before the pen is lifted."""
    box = page.get_by_test_id("canvas").bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 0.14 * box["height"])
    page.mouse.down()
    page.mouse.move(x, box["y"] + 0.86 * box["height"], steps=12)
    page.wait_for_selector(ANSWERED)  # the mouse button is still down
    page.mouse.up()
    page.wait_for_function(SETTLED)
    assert shown(page) == ("1", False)


def test_finger_draws_without_scrolling(browser, server_url: str) -> None:
    """Touch input on a phone-sized page: the stroke draws a 1 and the page does not scroll."""
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    page.goto(server_url + "/")
    page.get_by_test_id("canvas").scroll_into_view_if_needed()
    scrolled = page.evaluate("window.scrollY")
    box = page.get_by_test_id("canvas").bounding_box()
    x = box["x"] + box["width"] / 2
    ys = [box["y"] + box["height"] * (0.14 + 0.72 * i / 20) for i in range(21)]
    # Playwright's touchscreen only taps; the DevTools protocol sends a real touch stroke.
    cdp = context.new_cdp_session(page)
    cdp.send(
        "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": ys[0]}]}
    )
    for y in ys[1:]:
        cdp.send(
            "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_selector(ANSWERED)
    page.wait_for_function(SETTLED)
    shot(page, "touch-phone")
    assert shown(page) == ("1", False)
    assert page.evaluate("window.scrollY") == scrolled
    context.close()


def test_page_shows_what_the_service_answers(page, server_url: str) -> None:
    """For the picture on the pad, the page shows the API's digit, verdict and distances."""
    cross = [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]]  # not a digit: any answer
    draw(page, cross)
    shot(page, "drawn-cross")
    data_url = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    picture = base64.b64decode(data_url.split(",", 1)[1])
    answer = httpx.post(
        server_url + "/predict", content=picture, headers={"Content-Type": "image/png"}
    ).json()
    assert shown(page) == (str(answer["digit"]), answer["rejected"])
    distances = [answer["distances"][str(d)] for d in range(10)]
    bars = page.locator("[data-testid=distances] .bar-value").all_inner_texts()
    assert [float(text) for text in bars] == pytest.approx(distances, abs=0.051)


def test_clear_resets_the_answer(page) -> None:
    draw(page, ONE)
    page.get_by_test_id("clear").click()
    page.wait_for_function(SETTLED)
    assert shown(page) == ("–", False)
    assert page.locator("#layers").get_attribute("data-state") == "empty"


def test_uploaded_mnist_digit_shows_its_label(page, mnist_test, tmp_path: Path) -> None:
    images, labels = mnist_test
    path = tmp_path / "mnist-test-0.png"
    path.write_bytes(png(images[0]))
    page.get_by_test_id("upload").set_input_files(str(path))
    page.wait_for_selector(ANSWERED)
    page.wait_for_function(SETTLED)
    shot(page, "uploaded-mnist")
    assert shown(page) == (str(labels[0]), False)
    assert_inside_view(page, str(labels[0]))


def test_uploaded_small_scan_draws_the_threshold_it_was_judged_by(
    page, server_url: str, mnist_test, tmp_path: Path, scan_png
) -> None:
    images, _ = mnist_test
    path = tmp_path / "scan.png"
    path.write_bytes(scan_png(images[0], 10))
    answer = httpx.post(f"{server_url}/predict?explain=true", content=path.read_bytes(),
                        headers={"Content-Type": "image/png"}).json()  # fmt: skip
    rejection = httpx.get(f"{server_url}/model").json()["rejection"]
    judged = answer["explain"]["threshold"]
    assert judged == rejection["low_resolution_threshold"] != rejection["threshold"]
    page.get_by_test_id("upload").set_input_files(str(path))
    page.wait_for_selector(ANSWERED)
    page.wait_for_function(SETTLED)
    shot(page, "uploaded-small-scan")
    left = page.eval_on_selector("#bars .bar-threshold", "line => parseFloat(line.style.left)")
    scale = max(*answer["distances"].values(), judged, 1) * 1.08
    assert left == pytest.approx(100 * judged / scale, abs=0.01)


def test_dropped_mnist_digit_shows_its_label(page, mnist_test) -> None:
    images, labels = mnist_test
    # Playwright cannot drag a file from the desktop; a drop event carrying it is the same
    # to the page.
    page.evaluate(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], name, { type: 'image/png' }));
            const pad = document.getElementById('pad');
            pad.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true,
                                                      cancelable: true }));
        }""",
        [base64.b64encode(png(images[1])).decode(), "mnist-test-1.png"],
    )
    page.wait_for_selector(ANSWERED)
    page.wait_for_function(SETTLED)
    assert shown(page) == (str(labels[1]), False)


def test_blank_upload_shows_the_services_reason(page, tmp_path: Path) -> None:
    path = tmp_path / "blank.png"
    path.write_bytes(png(np.full((64, 64), 255, np.uint8)))
    page.get_by_test_id("upload").set_input_files(str(path))
    page.wait_for_selector("#result[data-state=error]")
    page.wait_for_function(SETTLED)
    shot(page, "blank-upload")
    error = page.get_by_test_id("error")
    assert error.is_visible()
    assert "blank" in error.inner_text().lower()
    assert shown(page) == ("–", False)


def test_architecture_from_the_model(page, server_url: str) -> None:
    table = page.get_by_test_id("layer-table")
    names = [cell.strip() for cell in table.locator("tbody td.name").all_inner_texts()]
    assert names == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    totals = table.locator("tfoot").inner_text()
    assert "60,000" in totals and "340,908" in totals
    assert page.locator("[data-testid=bitmaps] canvas").count() == 10
    assert page.locator("#c3-table td.on").count() == 60  # Table I's 60 connections
    facts = page.locator("#facts").inner_text()
    assert "0.95%" in facts  # the paper's error beside ours
    rejection = httpx.get(f"{server_url}/model").json()["rejection"]
    assert f"{rejection['threshold']:.2f}" in facts
    assert f"{rejection['low_resolution_threshold']:.2f} for a scan under 28 px" in facts
    shot(page, "architecture")


def stored_feedback(server_url: str) -> list[dict]:
    answer = httpx.get(f"{server_url}/feedback/export?limit=1000",
                       headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    answer.raise_for_status()
    return answer.json()["records"]


def test_correction_posts_the_drawing_and_says_it_was_kept(page, server_url: str) -> None:
    before = {record["id"] for record in stored_feedback(server_url)}
    draw(page, SEVEN)
    digit, rejected = shown(page)
    feedback = page.get_by_test_id("feedback")
    assert feedback.is_visible()
    assert "Wrong? It was a:" in feedback.inner_text()
    page.get_by_test_id("feedback-2").click()
    note = page.get_by_test_id("feedback-note")
    note.filter(has_text="kept as a 2").wait_for()
    shot(page, "correction-kept")
    new = [r for r in stored_feedback(server_url) if r["id"] not in before]
    assert len(new) == 1
    record = new[0]
    assert (record["label"], record["source"]) == ("2", "demo-drawing")
    assert record["predicted"] == ("none" if rejected else digit)
    # The service read the very image whose answer the page showed.
    assert (str(record["model_digit"]), record["model_rejected"]) == (digit, rejected)
    # Sent again, the same image with the same label is kept once.
    page.get_by_test_id("clear").click()
    draw(page, SEVEN)
    page.get_by_test_id("feedback-2").click()
    note.filter(has_text="Already kept").wait_for()
    assert len([r for r in stored_feedback(server_url) if r["id"] not in before]) == 1


def test_correction_of_an_upload_keeps_the_file_as_not_a_digit(
    page, server_url: str, mnist_test, tmp_path: Path
) -> None:
    images, _ = mnist_test
    path = tmp_path / "digit-9.png"
    path.write_bytes(png(images[9]))
    page.get_by_test_id("upload").set_input_files(str(path))
    page.wait_for_selector(ANSWERED)
    page.wait_for_function(SETTLED)
    page.get_by_test_id("feedback-none").click()
    page.get_by_test_id("feedback-note").filter(has_text="kept as not a digit").wait_for()
    record = stored_feedback(server_url)[-1]
    assert (record["label"], record["source"]) == ("none", "demo-upload")
    frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(record["frame_png"]))))
    assert np.array_equal(frame, images[9])  # the file itself was sent, not a re-drawing


def test_corrections_are_offered_only_under_an_answer(page, tmp_path: Path) -> None:
    assert not page.get_by_test_id("feedback").is_visible()
    draw(page, ONE)
    assert page.get_by_test_id("feedback").is_visible()
    page.get_by_test_id("clear").click()
    assert not page.get_by_test_id("feedback").is_visible()


# ---------------------------------------------------------------- photos and numbers

READ_ANSWERED = "#read[data-state=accepted], #read[data-state=rejected]"
# Blue-black ballpoint on cream paper with pale blue rules.
PAPER_RGB = np.array([246.0, 242.0, 230.0])
INK_RGB = np.array([32.0, 36.0, 70.0])
RULE_RGB = np.array([160.0, 190.0, 228.0])


def photo_of_paper(
    digits: list[np.ndarray], rng: np.random.Generator, size: tuple[int, int] = (1600, 1200)
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """A phone-like photo of MNIST digits written in a row on ruled paper under an uneven light:
    the picture, and each digit's true ink box (x, y, w, h) in its pixels."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    page = np.broadcast_to(PAPER_RGB, (height, width, 3)).copy()
    spacing = 46
    rules = ((yy.astype(int) - 30) % spacing < 3)[..., None]
    page = np.where(rules, RULE_RGB, page)
    digit_height = (0.45 if len(digits) == 1 else 0.3) * height
    side = round(28 * digit_height / 20)  # MNIST's digits fill 20 of their 28 rows
    gap = round(0.35 * digit_height)
    bigs = [
        np.asarray(Image.fromarray(d).resize((side, side), Image.Resampling.BICUBIC))
        for d in digits
    ]
    crops = []  # each digit cut to its ink, with that ink's row in the MNIST frame
    for big in bigs:
        rows, cols = np.nonzero(big)
        crops.append((big[:, cols.min() : cols.max() + 1], rows.min(), rows.max() + 1))
    strip = sum(crop.shape[1] for crop, _, _ in crops) + gap * (len(digits) - 1)
    left = int(rng.integers(width // 10, width - strip - width // 10))
    top = int(rng.integers(height // 10, height - side - height // 10))
    boxes = []
    for crop, r0, r1 in crops:
        alpha = (crop[r0:r1].astype(np.float32) / 255)[..., None] * 0.92
        region = page[top + r0 : top + r1, left : left + crop.shape[1]]
        region[...] = region * (1 - alpha) + INK_RGB * alpha
        rows, cols = np.nonzero(crop > 127)  # the ink as a person would box it
        boxes.append(
            (left + int(cols.min()), top + int(rows.min()), int(np.ptp(cols)) + 1,
             int(np.ptp(rows)) + 1)
        )  # fmt: skip
        left += crop.shape[1] + gap
    # The light falls off by a third from the top left corner to the bottom right one.
    light = 1 - 0.33 * (xx / width + yy / height) / 2
    page = page * light[..., None] + rng.normal(0, 3, page.shape)
    return Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)), boxes


def jpeg(image: Image.Image, orientation: int = 1) -> bytes:
    """The photo as a phone saves it; with orientation 6 the pixels are stored turned a quarter
    to the left and EXIF says to turn them back, as a phone held upright does."""
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation == 6:
        image = image.transpose(Image.Transpose.ROTATE_90)
        exif[0x0112] = 6
    image.save(buffer, format="JPEG", quality=88, exif=exif)
    return buffer.getvalue()


def overlap(a, b) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def expected_on_page(page, picture_size: tuple[int, int], box) -> dict[str, float]:
    """Where `box` (picture pixels) belongs on the pad: the picture is fitted into the canvas,
    centred, and the canvas's pixels are scaled to its CSS size."""
    pad = page.evaluate(
        """() => {
            const c = document.getElementById('canvas');
            const r = c.getBoundingClientRect();
            return { left: r.left + c.clientLeft, top: r.top + c.clientTop,
                     width: c.clientWidth, height: c.clientHeight, cw: c.width, ch: c.height };
        }"""
    )
    width, height = picture_size
    fit = min(pad["cw"] / width, pad["ch"] / height)
    sx, sy = pad["width"] / pad["cw"], pad["height"] / pad["ch"]
    return {
        "x": pad["left"] + ((pad["cw"] - width * fit) / 2 + box[0] * fit) * sx,
        "y": pad["top"] + ((pad["ch"] - height * fit) / 2 + box[1] * fit) * sy,
        "width": box[2] * fit * sx,
        "height": box[3] * fit * sy,
    }


def assert_box_drawn_at(element, expected: dict[str, float]) -> None:
    drawn = element.bounding_box()
    for key in ("x", "y", "width", "height"):
        assert drawn[key] == pytest.approx(expected[key], abs=1.0), (key, drawn, expected)


def upload(page, path: Path, answered: str = ANSWERED) -> None:
    page.get_by_test_id("upload").set_input_files(str(path))
    page.wait_for_selector(answered)
    page.wait_for_function(SETTLED)


def data_url_image(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


@pytest.mark.parametrize("orientation", [1, 6], ids=["upright", "exif-rotated"])
def test_uploaded_photo_shows_its_box_and_cleaned_ink(
    page, server_url: str, mnist_test, tmp_path: Path, orientation: int
) -> None:
    """A digit on ruled paper under an uneven light: the box the service found is drawn where
    the digit is on the preview, and the cleaned ink map is shown beside the network's input."""
    images, labels = mnist_test
    index = 3
    photo, (truth,) = photo_of_paper([images[index]], np.random.default_rng(12 + orientation))
    path = tmp_path / "digit-on-ruled-paper.jpg"
    path.write_bytes(jpeg(photo, orientation))
    upload(page, path)
    answer = httpx.post(
        server_url + "/predict?explain=true",
        files={"file": (path.name, path.read_bytes(), "image/jpeg")},
    ).json()
    assert overlap(answer["box"], truth) > 0.7  # the service found the digit itself
    assert shown(page) == (str(labels[index]), False)

    box = page.get_by_test_id("box")
    assert box.count() == 1
    assert box.inner_text() == str(labels[index])
    # Upright pixels: EXIF turned the stored picture back, in the service and in the browser.
    assert_box_drawn_at(box, expected_on_page(page, photo.size, answer["box"]))

    ink = page.locator("[data-testid=layer-input] [data-testid=ink]")
    ink.wait_for()
    assert ink.get_attribute("src") == answer["explain"]["ink"]["png"]
    assert (
        page.evaluate(
            "() => { const i = document.querySelector('[data-testid=ink]');"
            " return i.complete && i.naturalWidth; }"
        )
        == answer["explain"]["ink"]["width"]
    )
    # The cleaned map keeps the digit and drops the rules: its ink lies in the box.
    cleaned = data_url_image(answer["explain"]["ink"]["png"]).astype(np.float64)
    x, y, w, h = (v * cleaned.shape[1] / photo.size[0] for v in answer["box"])
    inside = cleaned[int(y) : math.ceil(y + h) + 1, int(x) : math.ceil(x + w) + 1].sum()
    assert inside > 0.8 * cleaned.sum()
    assert page.locator("[data-testid=layer-input] canvas").count() == 1  # the 32×32 input
    if orientation == 1:
        shot(page, "photo-box")
        page.locator("#try").screenshot(path=str(ARTIFACTS / "browser-photo-box-pad.png"))
        page.get_by_test_id("layer-input").screenshot(
            path=str(ARTIFACTS / "browser-photo-cleaned-ink.png")
        )


def in_thirds(strokes_per_digit: list[list[list[tuple[float, float]]]]):
    """Strokes drawn for one digit on a square pad, placed side by side on the 4:1 pad: digit i
    in a square of the pad's height centred in its i-th equal part."""
    n = len(strokes_per_digit)
    placed = []
    for i, strokes in enumerate(strokes_per_digit):
        centre = (i + 0.5) / n
        for stroke in strokes:
            placed.append([(centre + (fx - 0.5) / 4, fy) for fx, fy in stroke])
    return placed


def number_mode(page) -> None:
    page.get_by_test_id("mode-number").click()
    page.wait_for_selector("#read:not([hidden])")


def test_number_mode_has_a_wide_pad_and_goes_back(page) -> None:
    number_mode(page)
    pad = page.get_by_test_id("canvas").bounding_box()
    assert pad["width"] / pad["height"] == pytest.approx(4, rel=0.02)
    assert page.locator("#inside").is_hidden() and page.locator("#result").is_hidden()
    page.get_by_test_id("mode-digit").click()
    pad = page.get_by_test_id("canvas").bounding_box()
    assert pad["width"] == pytest.approx(pad["height"], rel=0.02)
    draw(page, ONE)  # one digit mode works as before
    assert shown(page) == ("1", False)


def test_written_number_is_read_with_its_boxes_and_distances(page, server_url: str) -> None:
    number_mode(page)
    draw(page, in_thirds([ONE, SEVEN, ZERO]), answered=READ_ANSWERED)
    shot(page, "number-mode")
    assert page.get_by_test_id("read-text").inner_text().strip() == "170"
    assert page.get_by_test_id("read-status").inner_text() == "Read as 170"

    # What the page shows is the service's answer to the very picture on the pad.
    data_url = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    picture = base64.b64decode(data_url.split(",", 1)[1])
    answer = httpx.post(
        server_url + "/read", content=picture, headers={"Content-Type": "image/png"}
    ).json()
    assert answer["text"] == "170"
    cards = page.get_by_test_id("read-digit")
    boxes = page.get_by_test_id("box")
    assert cards.count() == boxes.count() == 3
    size = (1120, 280)
    pad = "(c => [c.width, c.height])(document.getElementById('canvas'))"
    assert page.evaluate(pad) == list(size)
    for i, digit in enumerate(answer["digits"]):
        card = cards.nth(i)
        assert card.get_attribute("data-digit") == str(digit["digit"])
        values = card.locator(".bar-value").all_inner_texts()
        expected = [digit["distances"][str(d)] for d in range(10)]
        assert [float(v) for v in values] == pytest.approx(expected, abs=0.051)
        assert card.locator(".bar-row.winner").get_attribute("data-digit") == str(digit["digit"])
        assert_box_drawn_at(boxes.nth(i), expected_on_page(page, size, digit["box"]))
        # Each box holds the digit written in its part of the pad.
        x, _, w, _ = digit["box"]
        assert x < (i + 0.5) * size[0] / 3 < x + w
    page.get_by_test_id("read-ink").wait_for()
    page.get_by_test_id("read-digits").screenshot(path=str(ARTIFACTS / "browser-number-digits.png"))


def test_number_with_a_scribble_shows_the_services_verdict(page, server_url: str) -> None:
    """A 4, a scribble that is no digit, a 1: the page says what the service says, its reason
    when it refuses the line, and which digit it refused."""
    scribble = [[(0.2 + 0.6 * (i % 2), 0.2 + 0.6 * i / 8) for i in range(9)]]
    four = [[(0.6, 0.86), (0.6, 0.14), (0.22, 0.62), (0.8, 0.62)]]
    number_mode(page)
    draw(page, in_thirds([four, scribble, ONE]), answered=READ_ANSWERED)
    shot(page, "number-scribble")
    data_url = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    picture = base64.b64decode(data_url.split(",", 1)[1])
    answer = httpx.post(
        server_url + "/read", content=picture, headers={"Content-Type": "image/png"}
    ).json()
    assert page.get_by_test_id("read-text").inner_text().strip() == (answer["text"] or "–")
    status = page.get_by_test_id("read-status").inner_text()
    if answer["rejected"]:
        assert status == f"Not read: {answer['reason']}"
    else:
        assert status == f"Read as {answer['text']}"
    flags = page.get_by_test_id("read-digit").evaluate_all(
        "cards => cards.map((c) => c.dataset.rejected === 'true')"
    )
    assert flags == [d["rejected"] for d in answer["digits"]]


def test_uploaded_photo_of_a_number_is_read(page, mnist_test, tmp_path: Path) -> None:
    images, labels = mnist_test
    chosen = [1, 4, 7]
    photo, truths = photo_of_paper([images[i] for i in chosen], np.random.default_rng(13))
    path = tmp_path / "number-on-ruled-paper.jpg"
    path.write_bytes(jpeg(photo))
    number_mode(page)
    with page.expect_response(lambda r: "/read" in r.url) as reply:
        upload(page, path, answered=READ_ANSWERED)
    answer = reply.value.json()
    shot(page, "number-photo")
    expected = "".join(str(labels[i]) for i in chosen)
    assert page.get_by_test_id("read-text").inner_text().strip() == expected == answer["text"]
    boxes = page.get_by_test_id("box")
    assert boxes.count() == len(chosen)
    for i, (digit, truth) in enumerate(zip(answer["digits"], truths, strict=True)):
        assert overlap(digit["box"], truth) > 0.6
        assert_box_drawn_at(boxes.nth(i), expected_on_page(page, photo.size, digit["box"]))
