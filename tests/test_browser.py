"""The demo page in a real browser: Debian's headless Chromium driven by Playwright.

The real app serves the shipped model on a free loopback port; the tests draw digits with the
mouse, upload and drop real MNIST test digits, and read what the page shows. Screenshots go to
test-artifacts/ for a person to look at.

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
        # 4xx answers to /predict are part of the tests; a missing asset is not.
        if response.status >= 400 and "/predict" not in response.url:
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


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
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
    page.wait_for_selector(ANSWERED)
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


def test_architecture_from_the_model(page) -> None:
    table = page.get_by_test_id("layer-table")
    names = [cell.strip() for cell in table.locator("tbody td.name").all_inner_texts()]
    assert names == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    totals = table.locator("tfoot").inner_text()
    assert "60,000" in totals and "340,908" in totals
    assert page.locator("[data-testid=bitmaps] canvas").count() == 10
    assert page.locator("#c3-table td.on").count() == 60  # Table I's 60 connections
    assert "0.95%" in page.locator("#facts").inner_text()  # the paper's error beside ours
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
