// The demo page: draw or upload a digit, show LeNet-5's answer and its inner layers; or write
// (or upload) a number and show how the service read it, digit by digit.
// Plain browser JavaScript, no build step and nothing fetched but this service's own API.
"use strict";

const PREDICT_URL = "/predict?explain=true";
const READ_URL = "/read?explain=true";
const MODEL_URL = "/model";
const FEEDBACK_URL = "/feedback";
// What a correction can say: a digit, or that the image is not one (POST /feedback's labels).
const NOT_A_DIGIT = "none";
// Long enough to skip most of a stroke's intermediate states, short enough to feel live.
const DEBOUNCE_MS = 150;
const MAX_WAIT_MS = 400;
// A stroke about a tenth of the digit's height (in canvas pixels): the thickness of MNIST's pen
// strokes after the service scales the digit into its box.
const PEN_WIDTH = 20;
const PAPER = "#ffffff";
// Below this probability an accepted answer is shown as uncertain.
const LOW_CONFIDENCE = 0.5;
const INK = "#111111";
// The pad in canvas pixels, for each mode: a square for one digit, a strip for a number, of
// the same height so that the pen draws digits of the same size in both.
const PAD_SIZE = { digit: [280, 280], number: [1120, 280] };
// Canvas pixels above a box that its label needs.
const LABEL_ROOM = 20;
const MODE_TEXT = {
  digit: { title: "Draw a digit", hint: "mouse, pen or finger · or drop an image",
           label: "Drawing area: draw one digit" },
  number: { title: "Write a number", hint: "several digits in a row · or drop a photo of a number",
            label: "Drawing area: write a number, digits side by side" },
};
// The network's numbers are the model's own, from GET /model (model.spec on the service side):
// nothing about its input or layers is retyped here. Until it answers, the inside view waits.

// Feature maps drawn in the "inside" view: key in explain.activations, label, tile size in CSS
// pixels. Tiles of a convolution and its subsampling share a size so they line up.
const MAP_LAYERS = [
  { key: "c1", name: "C1", tile: 84 },
  { key: "s2", name: "S2", tile: 84 },
  { key: "c3", name: "C3", tile: 48 },
  { key: "s4", name: "S4", tile: 48 },
];

const $ = (id) => document.getElementById(id);

const state = {
  mode: "digit", // "digit" (POST /predict) or "number" (POST /read)
  model: null, // GET /model, once it answered
  inside: [null, null, null], // what the inside view shows: explain answer, digit, distances
  hasInk: false, // something drawn since the last clear: a blank canvas is never sent
  source: "none", // "drawing" or "upload": what the shown answer is about
  seq: 0, // number of the latest picture sent: answers to older ones are dropped
  answered: 0, // number of the latest picture answered (or given up)
  controller: null, // aborts the request in flight when a newer one starts
  timer: 0, // the pending debounced prediction, 0 when none
  firstScheduled: 0, // when the pending prediction was first asked for
  lastPoint: null,
  answer: null, // the answer shown, with the image it is about: what a correction refers to
  // Where the picture the service read lies on the pad: canvas pixels = offset + scale × picture
  // pixels (null until an uploaded picture is drawn), and the boxes its answer found in it.
  preview: null,
  boxes: [], // {box: [x, y, w, h] in picture pixels, label, rejected}
};

// ---------------------------------------------------------------- drawing

const canvas = () => $("canvas");

function clearCanvas() {
  const ctx = canvas().getContext("2d");
  ctx.fillStyle = PAPER; // opaque paper, so the PNG sent is what the user sees
  ctx.fillRect(0, 0, canvas().width, canvas().height);
  state.hasInk = false;
}

// Pointer position in canvas pixels, whatever CSS size the canvas is displayed at.
function canvasPoint(event) {
  const rect = canvas().getBoundingClientRect();
  return {
    x: ((event.clientX - rect.left) * canvas().width) / rect.width,
    y: ((event.clientY - rect.top) * canvas().height) / rect.height,
  };
}

function strokeTo(point) {
  const ctx = canvas().getContext("2d");
  ctx.strokeStyle = INK;
  ctx.fillStyle = INK;
  ctx.lineWidth = PEN_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  const from = state.lastPoint || point;
  if (from === point) {
    // A tap leaves a round dot, as a pen would.
    ctx.beginPath();
    ctx.arc(point.x, point.y, PEN_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(point.x, point.y);
    ctx.stroke();
  }
  state.lastPoint = point;
  state.hasInk = true;
}

function onPointerDown(event) {
  if (event.button !== 0) return;
  event.preventDefault();
  canvas().setPointerCapture(event.pointerId);
  if (state.source === "upload") resetAll(); // drawing starts afresh over an uploaded picture
  state.source = "drawing";
  state.preview = { x: 0, y: 0, scale: 1 }; // the drawing is the picture sent
  showBoxes([]); // the boxes of the last answer no longer fit the drawing
  state.lastPoint = null;
  strokeTo(canvasPoint(event));
  $("pad").classList.add("inked");
  if (state.mode === "digit") schedulePredict();
}

function onPointerMove(event) {
  if (state.lastPoint === null) return;
  // Coalesced events keep fast strokes smooth where the browser batches pointer moves.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) strokeTo(canvasPoint(e));
  // A number is read when the pen lifts: halfway through a digit it is not yet a number.
  if (state.mode === "digit") schedulePredict();
}

function onPointerUp() {
  if (state.lastPoint === null) return;
  state.lastPoint = null;
  predictDrawing(); // the finished stroke is answered at once, not after the debounce
}

function setupCanvas() {
  clearCanvas();
  const c = canvas();
  c.addEventListener("pointerdown", onPointerDown);
  c.addEventListener("pointermove", onPointerMove);
  c.addEventListener("pointerup", onPointerUp);
  c.addEventListener("pointercancel", onPointerUp);
  $("clear").addEventListener("click", resetAll);
  for (const button of document.querySelectorAll(".mode")) {
    button.addEventListener("click", () => setMode(button.dataset.mode));
  }
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape") resetAll();
  });
}

// ---------------------------------------------------------------- uploads

function setupUpload() {
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) useFile(file);
    e.target.value = ""; // choosing the same file again must trigger a new answer
  });
  const pad = $("pad");
  pad.addEventListener("dragenter", onDragOver);
  pad.addEventListener("dragover", onDragOver);
  pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
  pad.addEventListener("drop", (e) => {
    e.preventDefault();
    pad.classList.remove("dragging");
    const file = e.dataTransfer.files[0];
    if (file) useFile(file);
  });
  // A file dropped beside the pad would make the browser leave the page to open it.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
}

function onDragOver(event) {
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
  $("pad").classList.add("dragging");
}

// Show the file on the pad and send it as it is: the service's own preprocessing is better
// than a re-encoding of the canvas (a 28×28 MNIST digit then reaches the model bit for bit).
// In number mode it goes to /read, like a number written on the pad.
function useFile(file) {
  resetAll();
  state.source = "upload";
  $("source").textContent = file.name;
  $("pad").classList.add("inked");
  const seq = ++state.seq;
  previewFile(file);
  const form = new FormData();
  form.append("file", file, file.name);
  updateBusy();
  predict(form, seq);
}

function previewFile(file) {
  const url = URL.createObjectURL(file);
  const seq = state.seq;
  const img = new Image();
  img.onload = () => {
    const c = canvas();
    const ctx = c.getContext("2d");
    const scale = Math.min(c.width / img.width, c.height / img.height);
    const w = img.width * scale;
    const h = img.height * scale;
    // Small images (an MNIST digit is 28×28) are shown as crisp pixels, not blurred.
    ctx.imageSmoothingEnabled = scale < 2;
    ctx.drawImage(img, (c.width - w) / 2, (c.height - h) / 2, w, h);
    ctx.imageSmoothingEnabled = true;
    URL.revokeObjectURL(url);
    // The <img> applies the file's EXIF orientation (image-orientation: from-image), as the
    // service does before it gives boxes: both speak of the same, upright picture.
    if (seq === state.seq) { // still the picture on the pad
      state.preview = { x: (c.width - w) / 2, y: (c.height - h) / 2, scale };
      renderBoxes();
    }
  };
  img.onerror = () => URL.revokeObjectURL(url); // the service will say what is wrong with it
  img.src = url;
}

// ---------------------------------------------------------------- prediction requests

// Debounced, but never longer than MAX_WAIT_MS behind a stroke that keeps going: the answer
// follows the pen without a request for every pointer move.
function schedulePredict() {
  const now = performance.now();
  if (!state.timer) state.firstScheduled = now;
  clearTimeout(state.timer);
  const wait = Math.min(DEBOUNCE_MS, Math.max(0, state.firstScheduled + MAX_WAIT_MS - now));
  state.timer = setTimeout(predictDrawing, wait);
  updateBusy();
}

function predictDrawing() {
  clearTimeout(state.timer);
  state.timer = 0;
  if (state.hasInk) {
    const seq = ++state.seq; // numbered now: an older answer arriving meanwhile is stale
    canvas().toBlob((blob) => predict(blob, seq), "image/png");
  }
  updateBusy();
}

// POST the body (a PNG blob or a multipart form) as request number `seq`, to /predict or, in
// number mode, /read; only the latest request's answer is shown. A change of mode numbers a
// new picture, so an answer never lands in the other mode's card.
async function predict(body, seq) {
  if (seq !== state.seq) return; // a newer picture was numbered before this one was sent
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const headers = body instanceof Blob ? { "Content-Type": "image/png" } : {};
  const started = performance.now();
  const reading = state.mode === "number";
  try {
    const response = await fetch(reading ? READ_URL : PREDICT_URL, { method: "POST", body,
      headers, signal: controller.signal });
    const data = await response.json().catch(() => ({}));
    if (seq !== state.seq) return;
    const took = `answered in ${Math.round(performance.now() - started)} ms`;
    if (!response.ok) {
      showError(describeError(response.status, data));
    } else if (reading) {
      $("read-latency").textContent = took;
      showReading(data);
    } else {
      $("latency").textContent = took;
      showResult(data);
      const image = body instanceof Blob ? body : body.get("file");
      offerCorrection({ image, data });
    }
  } catch (err) {
    if (seq !== state.seq) return;
    showError("The service did not answer. Is it still running?");
  } finally {
    if (seq === state.seq) {
      state.answered = seq;
      updateBusy();
    }
  }
}

// FastAPI's 4xx bodies carry `detail`: a sentence, or a list of validation problems.
function describeError(status, data) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail) && detail.length) return detail.map((d) => d.msg || String(d)).join("; ");
  return `The service answered with HTTP ${status}.`;
}

// Busy while a prediction is scheduled or the latest request is unanswered. data-busy lets
// tests know when the answer shown is the one for the picture on the pad.
function updateBusy() {
  const busy = state.timer !== 0 || state.answered !== state.seq;
  document.body.dataset.busy = String(busy);
  $("result").classList.toggle("busy", busy);
}

// ---------------------------------------------------------------- the answer

function resetAll() {
  state.seq++; // answers still in flight belong to the old picture
  state.answered = state.seq;
  if (state.controller) state.controller.abort();
  clearTimeout(state.timer);
  state.timer = 0;
  clearCanvas();
  state.source = "none";
  state.preview = null;
  showBoxes([]);
  resetReading();
  $("source").textContent = "";
  $("pad").classList.remove("inked");
  $("prediction").textContent = "–";
  $("prediction").dataset.rejected = "false";
  $("result").dataset.state = "idle";
  $("status").textContent = "Waiting for a digit";
  $("status").className = "status";
  $("error").hidden = true;
  $("latency").textContent = "";
  for (const id of ["confidence", "p-none", "nearest"]) $(id).textContent = "–";
  renderBars($("bars"), null, null);
  clearInside();
  offerCorrection(null);
  updateBusy();
}

function showError(message) {
  showBoxes([]);
  if (state.mode === "number") {
    showReadError(message);
    return;
  }
  offerCorrection(null);
  $("result").dataset.state = "error";
  $("prediction").textContent = "–";
  $("status").textContent = "No answer";
  $("status").className = "status status-error";
  $("error").textContent = capitalise(message);
  $("error").hidden = false;
  for (const id of ["confidence", "p-none", "nearest"]) $(id).textContent = "–";
  renderBars($("bars"), null, null);
  clearInside();
}

function showResult(data) {
  $("error").hidden = true;
  $("result").dataset.state = data.rejected ? "rejected" : "accepted";
  const digit = $("prediction");
  digit.textContent = String(data.digit);
  digit.dataset.rejected = String(Boolean(data.rejected));
  const status = $("status");
  if (data.rejected) {
    status.textContent = `Rejected: this does not look like a digit (closest is ${data.digit})`;
    status.className = "status status-rejected";
  } else if (data.confidence < LOW_CONFIDENCE) {
    // Accepted, but the paper's MAP probability says another answer is about as likely.
    status.textContent = `Probably ${data.digit}, with low confidence`;
    status.className = "status status-rejected";
  } else {
    status.textContent = `Recognised as ${data.digit}`;
    status.className = "status status-accepted";
  }
  const distances = digitValues(data.distances);
  $("confidence").textContent = percent(data.confidence);
  $("p-none").textContent = data.probabilities ? percent(data.probabilities.none) : "–";
  $("nearest").textContent = Math.min(...distances).toFixed(2);
  if (data.version) showModelId(data.version, data.sha256);
  // A small scan is judged by a threshold of its own: the explain answer says which.
  const judged = data.explain && data.explain.threshold;
  renderBars($("bars"), distances, data.digit, typeof judged === "number" ? judged : undefined);
  showBoxes(data.box ? [{ box: data.box, label: String(data.digit), rejected: data.rejected }] : []);
  if (data.explain) renderInside(data.explain, data.digit, distances);
  else clearInside(); // never leave another picture's layers beside this answer
}

// ---------------------------------------------------------------- modes

// One digit (the square pad, /predict, the inside view) or a number (a wide pad, /read).
function setMode(mode) {
  if (mode === state.mode || !PAD_SIZE[mode]) return;
  state.mode = mode;
  document.body.dataset.mode = mode;
  for (const button of document.querySelectorAll(".mode")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
  }
  const text = MODE_TEXT[mode];
  $("draw-title").textContent = text.title;
  $("draw-hint").textContent = text.hint;
  const c = canvas();
  c.setAttribute("aria-label", text.label);
  [c.width, c.height] = PAD_SIZE[mode];
  $("result").hidden = mode !== "digit";
  $("inside").hidden = mode !== "digit";
  $("read").hidden = mode !== "number";
  resetAll();
}

// ---------------------------------------------------------------- boxes on the pad

// The boxes an answer gives, in the picture's pixels; drawn once the picture's place on the pad
// is known (an uploaded picture may be answered before the browser has decoded it).
function showBoxes(boxes) {
  state.boxes = boxes;
  renderBoxes();
}

// Each box as an element over the canvas (the canvas itself stays the picture that was sent),
// placed in percent of the canvas so it follows the pad's CSS size.
function renderBoxes() {
  const layer = $("boxes");
  layer.textContent = "";
  const place = state.preview;
  if (!place) return;
  const c = canvas();
  state.boxes.forEach(({ box, label, rejected }, i) => {
    const [x, y, w, h] = box;
    const node = el("div", rejected ? "ink-box rejected" : "ink-box");
    node.setAttribute("data-testid", "box");
    node.dataset.index = String(i);
    node.style.left = `${(100 * (place.x + x * place.scale)) / c.width}%`;
    node.style.top = `${(100 * (place.y + y * place.scale)) / c.height}%`;
    node.style.width = `${(100 * w * place.scale) / c.width}%`;
    node.style.height = `${(100 * h * place.scale) / c.height}%`;
    // A label above a box at the top edge would be cut off: it goes inside.
    if (place.y + y * place.scale < LABEL_ROOM) node.classList.add("at-top");
    node.append(el("span", "ink-box-label", label));
    layer.append(node);
  });
}

// Hovering a digit's card lights its box on the pad (the boxes let the pen through).
function highlight(index, on) {
  for (const node of document.querySelectorAll(`[data-index="${index}"]`)) {
    node.classList.toggle("hot", on);
  }
}

// ---------------------------------------------------------------- reading a number

function resetReading() {
  $("read").dataset.state = "idle";
  $("read-text").textContent = "–";
  $("read-text").dataset.rejected = "false";
  $("read-status").textContent = "Waiting for a number";
  $("read-status").className = "status";
  $("read-error").hidden = true;
  $("read-latency").textContent = "";
  for (const id of ["read-confidence", "read-count", "read-pieces"]) $(id).textContent = "–";
  showInk($("read-ink"), $("read-ink-image"), null);
  $("read-digits").textContent = "";
}

function showReadError(message) {
  resetReading();
  $("read").dataset.state = "error";
  $("read-status").textContent = "No reading";
  $("read-status").className = "status status-error";
  $("read-error").textContent = capitalise(message);
  $("read-error").hidden = false;
}

// POST /read's answer: the text, a verdict (with the service's reason when some part of the
// line could not be read), and for each digit left to right its box and ten distances.
function showReading(data) {
  resetReading();
  const digits = data.digits || [];
  $("read").dataset.state = data.rejected ? "rejected" : "accepted";
  const text = $("read-text");
  text.textContent = data.text || "–";
  text.dataset.rejected = String(Boolean(data.rejected));
  const status = $("read-status");
  if (data.rejected) {
    status.textContent = data.reason ? `Not read: ${data.reason}` : "Not read as a number";
    status.className = "status status-rejected";
  } else {
    status.textContent = `Read as ${data.text}`;
    status.className = "status status-accepted";
  }
  $("read-confidence").textContent = percent(data.confidence);
  $("read-count").textContent = String(digits.length);
  const segmentation = data.explain && data.explain.segmentation;
  if (segmentation && Array.isArray(segmentation.pieces)) {
    $("read-pieces").textContent = String(segmentation.pieces.length);
  }
  if (data.version) showModelId(data.version, data.sha256);
  showInk($("read-ink"), $("read-ink-image"), data.explain && data.explain.ink);
  showBoxes(digits.map((d) => ({ box: d.box, label: String(d.digit), rejected: d.rejected })));
  const list = $("read-digits");
  digits.forEach((d, i) => list.append(digitCard(d, i)));
}

function digitCard(d, index) {
  const card = el("div", d.rejected ? "read-digit rejected" : "read-digit");
  card.setAttribute("data-testid", "read-digit");
  card.dataset.index = String(index);
  card.dataset.digit = String(d.digit);
  card.dataset.rejected = String(Boolean(d.rejected));
  const head = el("div", "read-digit-head");
  head.append(el("span", "read-digit-value", String(d.digit)),
    el("span", "read-digit-note", d.rejected ? "rejected" : percent(d.confidence)));
  const bars = el("div", "bars mini");
  renderBars(bars, digitValues(d.distances), d.digit);
  card.append(head, bars);
  card.addEventListener("mouseenter", () => highlight(index, true));
  card.addEventListener("mouseleave", () => highlight(index, false));
  return card;
}

// explain.ink: the cleaned ink map as the service saw it (white ink on black), a PNG data URL.
function showInk(figure, img, ink) {
  figure.hidden = !(ink && ink.png);
  if (figure.hidden) {
    img.removeAttribute("src");
    return;
  }
  img.src = ink.png;
  img.width = ink.width;
  img.height = ink.height;
}

// ---------------------------------------------------------------- corrections

function setupFeedback() {
  const choices = $("feedback-choices");
  const labels = [...Array.from({ length: 10 }, (_, d) => String(d)), NOT_A_DIGIT];
  for (const label of labels) {
    const button = el("button", "", label === NOT_A_DIGIT ? "not a digit" : label);
    button.type = "button";
    button.dataset.label = label;
    button.setAttribute("data-testid", `feedback-${label}`);
    button.addEventListener("click", () => sendCorrection(label));
    choices.append(button);
  }
}

// Offer a correction of this answer (or of none): the choices appear under each new answer.
function offerCorrection(answer) {
  state.answer = answer;
  $("feedback").hidden = !answer;
  $("feedback-note").textContent = "";
  $("feedback-note").className = "feedback-note";
  for (const button of $("feedback-choices").children) button.disabled = false;
}

async function sendCorrection(label) {
  const answer = state.answer;
  if (!answer) return;
  const { image, data } = answer;
  const form = new FormData();
  form.append("file", image, image.name || "drawing.png");
  form.append("label", label);
  form.append("predicted", data.rejected ? NOT_A_DIGIT : String(data.digit));
  form.append("version", data.version || "");
  form.append("source", state.source === "upload" ? "demo-upload" : "demo-drawing");
  const buttons = [...$("feedback-choices").children];
  for (const button of buttons) button.disabled = true;
  const note = $("feedback-note");
  const said = label === NOT_A_DIGIT ? "not a digit" : `a ${label}`;
  try {
    const response = await fetch(FEEDBACK_URL, { method: "POST", body: form });
    const reply = await response.json().catch(() => ({}));
    if (state.answer !== answer) return; // another picture since: its own choices are shown
    if (response.ok) {
      note.textContent = reply.duplicate
        ? `Already kept: this image as ${said} (record ${reply.id}).`
        : `Thank you: kept as ${said} (record ${reply.id}), for the next training.`;
      note.className = "feedback-note kept";
    } else {
      note.textContent = capitalise(describeError(response.status, reply));
      note.className = "feedback-note failed";
      for (const button of buttons) button.disabled = false;
    }
  } catch (err) {
    if (state.answer !== answer) return;
    note.textContent = "The service did not answer. Is it still running?";
    note.className = "feedback-note failed";
    for (const button of buttons) button.disabled = false;
  }
}

// The service's messages start in lower case: they read as sentences on the page.
const capitalise = (text) => text.charAt(0).toUpperCase() + text.slice(1);

// {"0": …, "9": …} as an array indexed by digit.
function digitValues(byDigit) {
  return Array.from({ length: 10 }, (_, d) => Number(byDigit[String(d)]));
}

function percent(p) {
  if (typeof p !== "number") return "–";
  return p >= 0.999 ? ">99.9%" : `${(100 * p).toFixed(1)}%`;
}

function rejectionThreshold() {
  const r = state.model && state.model.rejection;
  return r && typeof r.threshold === "number" ? r.threshold : null;
}

// Horizontal bars, one per digit; the dashed line is the rejection threshold (the model's, or
// the one the answer was judged by): an input whose nearest bitmap is beyond it is refused.
function renderBars(bars, distances, winner, threshold = rejectionThreshold()) {
  bars.textContent = "";
  const values = distances || Array(10).fill(0);
  const max = Math.max(...values, threshold || 0, 1) * 1.08;
  for (let d = 0; d < 10; d++) {
    const row = document.createElement("div");
    row.className = "bar-row" + (d === winner ? " winner" : "");
    row.dataset.digit = String(d);
    const label = el("span", "bar-label", String(d));
    const track = el("span", "bar-track");
    const fill = el("span", "bar-fill");
    fill.style.width = `${(100 * values[d]) / max}%`;
    track.append(fill);
    if (threshold !== null && distances) {
      const line = el("span", "bar-threshold");
      line.style.left = `${(100 * threshold) / max}%`;
      track.append(line);
    }
    const value = el("span", "bar-value", distances ? fmtDistance(values[d]) : "");
    row.append(label, track, value);
    bars.append(row);
  }
  bars.classList.toggle("empty", !distances);
}

// Small distances get two decimals: they are the ones compared with each other.
const fmtDistance = (x) => x.toFixed(x < 10 ? 2 : 1);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------- greyscale pictures

// Paint a 2-D array of values on a canvas, one canvas pixel per value (CSS scales it up,
// pixelated). Values from lo to hi go from paper white to ink black, like the input.
function paintGrid(target, grid, lo, hi) {
  const rows = grid.length;
  const cols = grid[0].length;
  target.width = cols;
  target.height = rows;
  const ctx = target.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const t = Math.min(1, Math.max(0, (grid[y][x] - lo) / (hi - lo)));
      const grey = Math.round(255 * (1 - t));
      const i = 4 * (y * cols + x);
      image.data[i] = image.data[i + 1] = image.data[i + 2] = grey;
      image.data[i + 3] = 255;
    }
  }
  ctx.putImageData(image, 0, 0);
}

// A flat vector as rows of `width` values.
function toRows(values, width) {
  const rows = [];
  for (let i = 0; i < values.length; i += width) rows.push(values.slice(i, i + width));
  return rows;
}

function tile(grid, lo, hi, size, title) {
  const c = document.createElement("canvas");
  c.className = "map";
  c.title = title;
  paintGrid(c, grid, lo, hi);
  c.style.width = `${size}px`;
  c.style.height = `${(size * grid.length) / grid[0].length}px`;
  return c;
}

// A blank tile of the right size, shown before the first answer.
function blankTile(rows, cols, size) {
  const grid = Array.from({ length: rows }, () => Array(cols).fill(-Infinity));
  return tile(grid, 0, 1, size, "");
}

// ---------------------------------------------------------------- inside the network

function layerInfo(key) {
  const layers = (state.model && state.model.layers) || [];
  return layers.find((l) => l.name.toLowerCase() === key);
}

// Squashing amplitude A of f(a) = A·tanh(S·a): every activation lies in [−A, A].
function squashA() {
  return state.model.squashing.A;
}

// A layer's output shape as drawn: C5's 120 maps of 1×1 as the vector F6 reads.
function shapeOf(key) {
  const shape = layerInfo(key).output_shape;
  return key === "c5" ? [shape.reduce((a, b) => a * b, 1)] : shape;
}

function describeLayer(key, shape) {
  const info = layerInfo(key);
  const kind = `${info.kind}${info.kernel_size ? ` ${info.kernel_size.join("×")}` : ""}`;
  const size = shape.length === 3 ? `${shape[0]} maps ${shape[1]}×${shape[2]}` : `${shape[0]} units`;
  return { kind, size };
}

function layerRow(name, kind, size, testid) {
  const row = el("div", "layer-row");
  row.dataset.testid = testid;
  const head = el("div", "layer-head");
  head.append(el("div", "layer-name", name), el("div", "layer-kind", kind), el("div", "layer-size", size));
  const body = el("div", "layer-maps");
  row.append(head, body);
  return { row, body };
}

// The rows of the inside view, blank (explain === null) or painted from an explain answer.
function buildInside(explain, winner, distances) {
  const layers = $("layers");
  layers.textContent = "";
  layers.dataset.state = explain ? "shown" : "empty";
  if (!state.model) return; // drawn once GET /model has answered
  const { background, ink, shape, frame, digit_box: box } = state.model.input;
  const [height, width] = shape.slice(-2);
  const acts = explain ? explain.activations : null;

  const size = `${height}×${width}`;
  const input = layerRow("Input", "preprocessed image", size, "layer-input");
  const seen = explain
    ? tile(explain.input, background, ink, 128, `The ${size} image the network sees`)
    : blankTile(height, width, 128);
  if (explain && explain.ink && explain.ink.png) {
    // The cleaned ink map of the whole upload beside what was cut from it for the network.
    const figure = el("figure", "mini ink-view");
    const img = el("img");
    img.setAttribute("data-testid", "ink");
    img.alt = "The cleaned ink map";
    figure.append(img, el("figcaption", "", "cleaned ink: what the service saw"));
    showInk(figure, img, explain.ink);
    input.body.append(figure, figureOf(seen, `network input ${size}`));
  } else {
    input.body.append(seen);
  }
  input.body.append(el("p", "layer-note",
    `The service centres the digit by its centre of mass in a ${box}×${box} box within a ` +
    `${frame}×${frame} frame, as MNIST was prepared, and pads it to ${size}. ` +
    "This is exactly what C1 reads."));
  layers.append(input.row);

  for (const { key, name, tile: size } of MAP_LAYERS) {
    const maps = acts ? acts[key] : null;
    const shape = maps ? [maps.length, maps[0].length, maps[0][0].length] : shapeOf(key);
    const { kind, size: text } = describeLayer(key, shape);
    const row = layerRow(name, kind, text, `layer-${key}`);
    row.body.classList.add("grid");
    for (let m = 0; m < shape[0]; m++) {
      row.body.append(maps
        ? tile(maps[m], -squashA(), squashA(), size, `${name} map ${m}`)
        : blankTile(shape[1], shape[2], size));
    }
    layers.append(row.row);
  }

  layers.append(vectorRow("c5", "C5", acts && acts.c5));
  layers.append(f6Row(acts && acts.f6, winner, distances));
}

// C5's 120 units as one strip: it is a vector, though computed as 120 maps of 1×1.
function vectorRow(key, name, values) {
  const flat = values ? values.flat(Infinity) : null;
  const shape = flat ? [flat.length] : shapeOf(key);
  const { kind, size } = describeLayer(key, shape);
  const row = layerRow(name, kind, size, `layer-${key}`);
  const strip = flat
    ? tile(toRows(flat, 60), -squashA(), squashA(), 600, `${name}: ${flat.length} units`)
    : blankTile(2, 60, 600);
  strip.classList.add("strip");
  row.body.append(strip);
  return row.row;
}

// F6's 84 values drawn as the 7×12 picture they are compared with, beside the bitmap of the
// winning digit: the closer the two pictures, the smaller that digit's distance.
function f6Row(values, winner, distances) {
  const { kind, size } = describeLayer("f6", shapeOf("f6"));
  const bitmaps = state.model.rbf_bitmaps;
  const { width, height } = bitmaps;
  const row = layerRow("F6", kind, `${size} as ${width}×${height}`, "layer-f6");
  const pair = el("div", "f6-pair");
  const f6 = values
    ? tile(toRows(values.flat(Infinity), width), -1, 1, 70, `F6 output as ${width}×${height}`)
    : blankTile(height, width, 70);
  pair.append(figureOf(f6, "F6 output"));
  pair.append(el("span", "f6-vs", "vs"));
  if (values && winner !== null && bitmaps.digits[winner]) {
    const code = tile(bitmaps.digits[winner], -1, 1, 70, `RBF bitmap of ${winner}`);
    pair.append(figureOf(code, `bitmap of ${winner}`));
    pair.append(el("p", "layer-note",
      `Distance ${distances[winner].toFixed(2)}: the sum of squared differences between the ` +
      `two pictures. Every other digit's bitmap is farther away.`));
  } else {
    pair.append(figureOf(blankTile(height, width, 70), "winning bitmap"));
  }
  row.body.append(pair);
  return row.row;
}

function figureOf(node, caption) {
  const fig = el("figure", "mini");
  fig.append(node, el("figcaption", "", caption));
  return fig;
}

function renderInside(explain, winner, distances) {
  state.inside = [explain, winner, distances];
  buildInside(explain, winner, distances);
}

function clearInside() {
  renderInside(null, null, null);
}

// ---------------------------------------------------------------- architecture (GET /model)

async function loadModel() {
  try {
    const response = await fetch(MODEL_URL);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    state.model = await response.json();
  } catch (err) {
    $("arch-source").textContent = `could not load the model description (${err.message})`;
    return;
  }
  const m = state.model;
  $("legend-lo").textContent = `−${squashA().toFixed(2)}`;
  $("legend-hi").textContent = `+${squashA().toFixed(2)}`;
  showModelId(m.version, m.sha256);
  renderLayerTable(m);
  renderBitmaps(m.rbf_bitmaps);
  renderC3Table(m.c3_table);
  renderFacts(m);
  if (rejectionThreshold() !== null) {
    for (const id of ["threshold-note", "read-threshold-note"]) {
      const note = $(id);
      note.textContent = "";
      note.append(el("span", "legend-key"), "rejection threshold");
    }
  }
  // The inside view needs the model's layers: blank until now, or the answer that came first.
  buildInside(...state.inside);
}

function showModelId(version, sha256) {
  if (!version) return;
  const node = $("model-id");
  node.textContent = `model ${version}`;
  if (sha256) node.title = `sha256 ${sha256}`;
}

const fmtInt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");
const fmtShape = (s) => (Array.isArray(s) ? s.join("×") : "–");

function renderLayerTable(model) {
  const table = $("layer-table");
  const body = table.tBodies[0];
  body.textContent = "";
  for (const layer of model.layers || []) {
    const tr = document.createElement("tr");
    const cells = [
      [layer.name, "name"],
      [layer.kind, ""],
      [fmtShape(layer.input_shape), "shape"],
      [fmtShape(layer.output_shape), "shape"],
      [layer.kernel_size ? layer.kernel_size.join("×") : "–", "shape"],
      [fmtInt(layer.maps), "num"],
      [fmtInt(layer.trainable_parameters), "num"],
      [fmtInt(layer.connections), "num"],
    ];
    for (const [text, cls] of cells) tr.append(el("td", cls, text));
    body.append(tr);
  }
  const totals = model.totals || {};
  table.tFoot.textContent = "";
  const tr = document.createElement("tr");
  const label = el("td", "", "Total");
  label.colSpan = 6;
  tr.append(label, el("td", "num", fmtInt(totals.trainable_parameters)),
    el("td", "num", fmtInt(totals.connections)));
  table.tFoot.append(tr);
}

function renderBitmaps(bitmaps) {
  const box = $("bitmaps");
  box.textContent = "";
  if (!bitmaps || !bitmaps.digits) return;
  bitmaps.digits.forEach((grid, d) => {
    box.append(figureOf(tile(grid, -1, 1, 42, `RBF bitmap of ${d}`), String(d)));
  });
}

// Table I of the paper: rows are S2 maps (inputs), columns C3 maps; X marks a connection.
function renderC3Table(table) {
  const node = $("c3-table");
  node.textContent = "";
  if (!Array.isArray(table) || !table.length) return;
  const head = document.createElement("tr");
  head.append(el("th", "", ""));
  table[0].forEach((_, j) => head.append(el("th", "", String(j))));
  node.append(head);
  table.forEach((row, i) => {
    const tr = document.createElement("tr");
    tr.append(el("th", "", String(i)));
    for (const on of row) tr.append(el("td", on ? "on" : "", on ? "X" : ""));
    node.append(tr);
  });
}

function renderFacts(model) {
  const facts = $("facts");
  facts.textContent = "";
  const add = (term, value, wide = false) => {
    if (value === undefined || value === null || value === "") return;
    const div = el("div", wide ? "wide" : "");
    div.append(el("dt", "", term), el("dd", "", value));
    facts.append(div);
  };
  const t = model.training || {};
  const paper = t.paper_test_error || {};
  if (typeof t.test_error === "number") {
    const ref = typeof paper["LeNet-5"] === "number" ? ` (paper: ${pct2(paper["LeNet-5"])})` : "";
    add("Test error on MNIST", `${pct2(t.test_error)}${ref}`);
  }
  if (t.epochs !== undefined) add("Training", `${t.epochs} epochs${t.distort ? ", with distortions" : ""}`);
  const sq = model.squashing;
  if (sq) add("Squashing", `f(a) = A·tanh(S·a), A = ${sq.A}, S = ${fraction(sq.S)}`);
  const threshold = rejectionThreshold();
  const scans = model.rejection && model.rejection.low_resolution_threshold;
  const frame = model.input && model.input.frame;
  const forScans =
    typeof scans === "number" ? `, ${scans.toFixed(2)} for a scan under ${frame} px` : "";
  if (threshold !== null) add("Rejection", `nearest distance above ${threshold.toFixed(2)}${forScans}`);
  add("Version", model.version);
  add("SHA-256 of the model file", model.sha256, true);
}

const pct2 = (p) => `${(100 * p).toFixed(2)}%`;
// 2/3 reads better than 0.6666666666666666.
const fraction = (x) => (Math.abs(x - 2 / 3) < 1e-9 ? "2/3" : String(x));

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  setupCanvas();
  setupUpload();
  setupFeedback();
  resetAll();
  loadModel();
});
