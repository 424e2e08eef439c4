// cnnlab serve: the page. Plain JavaScript, no build step, nothing fetched but this server's /api/.
//
// One rule against stale state: every result pane shows the current image and model or nothing. Clear, a new
// model, a blank drawing and an error all go through resetResults(), which also drops any answer still on its way
// (state.seq numbers the requests for one image, state.xseq the explanations of it).
//
// A model of another task (localize, detect, segment) gets its prediction drawn over the input on a second canvas
// (#overlay, the boxes with their class and score, or the mask's class colours at half opacity), and a legend of
// what is drawn; explanations are for classifiers and their cards are hidden.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  models: [], model: null, blob: null, source: null, note: "", seq: 0, xseq: 0,
  timer: null, drawing: false, last: null, dirty: false,
};
const SIDE = 280; // canvas pixels
const EMPTY = "Draw or upload an image";
const BLANK_SHARE = 0.01; // less than 1 % of the pixels away from the background: blank, not predicted
const UNSURE = 0.5; // a top probability below this gets a note that the input may be unlike the training images
const MAX_SEND = 1024; // pixels: a padded upload is scaled down to this side (the network's input is far smaller)
const EXAMPLES = 6; // thumbnails of test images
const TASKS = { classify: "classification", localize: "localization", detect: "detection", segment: "segmentation" };
const MASK_OPACITY = 0.5; // the class colours over the image, as Task.draw (tasks/segment.py OVERLAY)

function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + " %"; }

function showError(message) { $("error").textContent = message || ""; }

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) throw new Error(body.error || body.detail || response.statusText);
  return body;
}

function element(tag, props, ...children) {
  const e = Object.assign(document.createElement(tag), props || {});
  e.append(...children);
  return e;
}

function shorten(text, n = 24) { return text.length <= n ? text : text.slice(0, n - 1) + "…"; }

// ---- result panes ----

function placeholder(text) { return element("div", { className: "placeholder" }, text || "–"); }

function setPicture(id, src, alt) { // an <img> only with a source; otherwise the empty state's text
  const frame = $(id + "-frame");
  if (!src) { frame.replaceChildren(placeholder(alt)); return; }
  let img = $(id);
  if (!img) { img = element("img", { id }); frame.replaceChildren(img); }
  img.alt = alt;
  img.src = src;
}

const NO_EXPLAIN = "No explanations: this model is an ONNX file (serve its run to see them)";

function clearExplanation(text) {
  if (state.model && !state.model.methods.length) text = NO_EXPLAIN; // ONNX Runtime predicts only
  setPicture("seen", null, text);
  setPicture("saliency", null, text);
  $("seen-caption").textContent = "as the network sees it";
  $("target").textContent = "–";
  $("layer").textContent = "";
  $("features").replaceChildren(placeholder(text));
  $("features-legend").hidden = true;
}

function resetResults(message = EMPTY) {
  state.seq += 1; // answers still on their way belong to what was reset: dropped
  clearOverlay();
  $("legend").replaceChildren();
  const box = $("prediction");
  box.textContent = message;
  box.className = "prediction empty";
  for (const key of ["class", "model", "objects", "classes"]) delete box.dataset[key];
  $("bars").replaceChildren();
  for (const id of ["hint", "notes", "error"]) $(id).textContent = "";
  clearExplanation(message || "no result");
}

function failed(message) { // only the error: nothing of an earlier image stays beside it
  resetResults("");
  showError(message);
}

// ---- models ----

function metricText(m) { // accuracy in per cent; IoU and mAP as the 0–1 numbers they are reported as
  const v = m.metric.value;
  if (v == null) return "–";
  return m.task === "classify" ? (100 * v).toFixed(2) + " %" : v.toFixed(3);
}

function describe(m) {
  const [c, h, w] = m.input_size;
  const classes = m.classes.length <= 12 ? m.classes.join(", ") : m.classes.length + " classes";
  const info = $("model-info");
  info.replaceChildren();
  if (m.task !== "classify") {
    info.append(element("span", { className: "task-badge", id: "task", textContent: TASKS[m.task] || m.task }), " ");
  }
  const parts = [["", m.model], ["input ", `${c}×${h}×${w} ${c === 1 ? "gray" : "RGB"}`],
                 [m.metric.name + " ", metricText(m)], ["data ", m.dataset || "–"], ["classes ", classes]];
  parts.forEach(([label, value], i) => {
    if (i) info.append(" · ");
    info.append(label, element("b", { textContent: shorten(value, 40), title: value }));
  });
}

function fillTargets(m) {
  const select = $("target-class");
  select.replaceChildren(element("option", { value: "", textContent: "the predicted class" }));
  m.classes.forEach((name, i) => select.append(element("option", { value: String(i), textContent: name })));
}

function selectModel(id) {
  state.model = state.models.find((m) => m.id === id) || state.models[0];
  describe(state.model);
  fillTargets(state.model);
  for (const id of ["method", "target-class"]) $(id).disabled = !state.model.methods.length;
  document.body.classList.toggle("task", state.model.task !== "classify");
  document.body.dataset.task = state.model.task;
  const gray = state.model.channels === 1;
  $("draw-box").hidden = !gray && state.model.task === "classify"; // a task's canvas shows its overlay
  $("draw-note").hidden = gray;
  resetResults(state.blob ? "…" : EMPTY);
  loadExamples(state.model);
  if (state.blob) refresh(); // the same image, asked of the new model
}

async function loadModels() {
  const { models } = await api("/api/models");
  state.models = models;
  const select = $("model");
  for (const m of models) { // short names; the full one (a notation string can be long) in the tooltip
    const full = m.id === m.model ? m.id : `${m.id}: ${m.model}`;
    select.append(element("option", { value: m.id, textContent: shorten(m.id), title: full }));
  }
  select.disabled = models.length < 2;
  select.addEventListener("change", () => selectModel(select.value));
  selectModel(models[0].id);
}

// ---- drawing ----

const canvas = $("canvas");
const ctx = canvas.getContext("2d");

function paper() { return $("invert").checked; }

function clearCanvas() {
  ctx.fillStyle = paper() ? "#fff" : "#000";
  ctx.fillRect(0, 0, SIDE, SIDE);
  canvas.classList.toggle("paper", paper());
  state.dirty = false;
}

function strokeWidth() {
  const h = state.model ? state.model.input_size[1] : 28;
  return parseFloat($("stroke").value) * SIDE / h; // the slider is in the model's pixels
}

function point(event) {
  const r = canvas.getBoundingClientRect();
  return [(event.clientX - r.left) * SIDE / r.width, (event.clientY - r.top) * SIDE / r.height];
}

function line(from, to) {
  ctx.strokeStyle = paper() ? "#000" : "#fff";
  ctx.lineWidth = strokeWidth();
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
}

canvas.addEventListener("pointerdown", (e) => {
  canvas.setPointerCapture(e.pointerId);
  clearOverlay(); // it shows the image before this stroke
  state.drawing = true;
  state.last = point(e);
  line(state.last, state.last);
  state.dirty = true;
  schedule();
});
canvas.addEventListener("pointermove", (e) => {
  if (!state.drawing) return;
  const p = point(e);
  line(state.last, p);
  state.last = p;
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (!state.drawing) return;
    state.drawing = false;
    schedule(0);
  });
}

function schedule(delay = 150) { // debounced: live while drawing, not once per mouse event
  clearTimeout(state.timer);
  state.timer = setTimeout(useCanvas, delay);
}

// The share of pixels far (> 40 of 255) from the most common brightness, the background: a tap's dot is ~0.6 %.
function inkShare(source, width, height) {
  const k = Math.min(1, SIDE / Math.max(width, height));
  const w = Math.max(1, Math.round(width * k)), h = Math.max(1, Math.round(height * k));
  const c = element("canvas", { width: w, height: h }).getContext("2d", { willReadFrequently: true });
  c.drawImage(source, 0, 0, w, h);
  const px = c.getImageData(0, 0, w, h).data;
  const gray = new Uint8Array(w * h), counts = new Uint32Array(256);
  for (let i = 0; i < gray.length; i++) {
    gray[i] = (299 * px[4 * i] + 587 * px[4 * i + 1] + 114 * px[4 * i + 2]) / 1000;
    counts[gray[i]] += 1;
  }
  const background = counts.indexOf(Math.max(...counts));
  let ink = 0;
  for (const g of gray) if (Math.abs(g - background) > 40) ink += 1;
  return ink / gray.length;
}

function blank(share, what) {
  state.blob = null;
  resetResults(`${what} is blank or nearly (${(100 * share).toFixed(1)} % inked): ` +
               "draw or choose something larger to get a prediction");
  $("prediction").classList.add("blank");
}

function useCanvas() {
  if (!state.dirty) return;
  $("truth").textContent = "";
  const share = inkShare(canvas, SIDE, SIDE);
  if (share < BLANK_SHARE) { blank(share, "The canvas"); return; }
  let source = canvas;
  if (paper()) { // dark on light → light on dark, the MNIST / Fashion-MNIST convention
    source = element("canvas", { width: SIDE, height: SIDE });
    const c = source.getContext("2d");
    c.filter = "invert(1)";
    c.drawImage(canvas, 0, 0);
  }
  source.toBlob((blob) => setImage(blob, "canvas"), "image/png");
}

$("clear").addEventListener("click", () => {
  clearCanvas();
  state.blob = null;
  $("truth").textContent = "";
  resetResults();
});
$("stroke").addEventListener("input", () => { $("stroke-value").textContent = $("stroke").value; });
$("invert").addEventListener("change", () => $("clear").click());

// ---- files and test images ----

function showOnCanvas(bitmap) { // letterboxed on black; it becomes the drawing, so strokes can be added to it
  $("invert").checked = false;
  clearCanvas();
  const k = Math.min(SIDE / bitmap.width, SIDE / bitmap.height);
  const w = bitmap.width * k, h = bitmap.height * k;
  ctx.imageSmoothingEnabled = k < 1;
  ctx.drawImage(bitmap, (SIDE - w) / 2, (SIDE - h) / 2, w, h);
  ctx.imageSmoothingEnabled = true;
}

// A picture that is not square, padded with black to a square exactly as the canvas shows it (the server would
// stretch it to the model's input size otherwise); a square one is sent as it is.
async function letterbox(bitmap, blob) {
  const { width, height } = bitmap;
  if (width === height) return { blob, note: "" };
  const k = Math.min(1, MAX_SEND / Math.max(width, height));
  const side = Math.round(Math.max(width, height) * k), w = width * k, h = height * k;
  const box = element("canvas", { width: side, height: side });
  const c = box.getContext("2d");
  c.fillStyle = "#000";
  c.fillRect(0, 0, side, side);
  c.drawImage(bitmap, (side - w) / 2, (side - h) / 2, w, h);
  const padded = await new Promise((resolve) => box.toBlob(resolve, "image/png"));
  return { blob: padded, note: `padded ${width}×${height} with black to ${side}×${side}, as the canvas shows it` };
}

async function useImage(blob, truth) {
  $("truth").replaceChildren(...(truth || []));
  let bitmap = null;
  try { bitmap = await createImageBitmap(blob); } catch (e) { /* the browser cannot decode it: the server may */ }
  if (!bitmap) {
    clearCanvas(); // nothing of the previous image stays on the canvas
    setImage(blob, "file", "the browser cannot show this file: the server resizes it to the model's input as it is");
    return;
  }
  showOnCanvas(bitmap);
  const share = inkShare(bitmap, bitmap.width, bitmap.height);
  if (share < BLANK_SHARE) { blank(share, "The image"); return; }
  const { blob: sent, note } = await letterbox(bitmap, blob);
  setImage(sent, "file", note);
}

$("file").addEventListener("change", (e) => {
  if (e.target.files[0]) useImage(e.target.files[0]);
  e.target.value = ""; // the same file chosen again is a change too
});
$("choose").addEventListener("click", () => $("file").click());
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) useImage(e.dataTransfer.files[0]);
});

async function useTestImage(r) {
  const blob = await (await fetch(r.image_png)).blob();
  const scene = r.label.index == null; // a scene: the classes it holds
  const truth = [element("span", { textContent: `test image #${r.index}, ${scene ? "holds" : "true label"}: ` }),
                 element("b", { textContent: r.label.class || "nothing" })];
  await useImage(blob, truth);
}

$("random").addEventListener("click", async () => {
  try {
    await useTestImage(await api(`/api/models/${encodeURIComponent(state.model.id)}/random`));
  } catch (e) {
    $("truth").textContent = e.message;
  }
});

async function loadExamples(m) {
  const strip = $("examples");
  strip.replaceChildren(placeholder("loading…"));
  const path = `/api/models/${encodeURIComponent(m.id)}/random?seed=`;
  let found;
  try { // one first: without the data set on the server, one answer says why
    const first = await api(path + 1);
    found = [first, ...await Promise.all(Array.from({ length: EXAMPLES - 1 }, (_, k) => api(path + (k + 2))))];
  } catch (e) {
    if (state.model === m) strip.replaceChildren(placeholder(e.message));
    return;
  }
  if (state.model !== m) return; // another model was chosen meanwhile
  strip.replaceChildren(...found.map((r) => {
    const img = element("img", { src: r.image_png, alt: `test image #${r.index}` });
    const button = element("button", { type: "button", className: "thumb", title: `test image #${r.index}: ${r.label.class}` }, img);
    button.addEventListener("click", () => useTestImage(r));
    return button;
  }));
}

// ---- results ----

function setImage(blob, source, note = "") {
  state.blob = blob;
  state.source = source; // the canvas's own conversion (280×280 RGBA → the model's input) needs no note
  state.note = note;
  refresh();
}

function form(extra) {
  const data = new FormData();
  data.append("image", state.blob, "image.png");
  data.append("model", state.model.id);
  data.append("top", "5");
  for (const [k, v] of Object.entries(extra || {})) data.append(k, v);
  return data;
}

function explainForm() {
  const target = $("target-class").value;
  return form({ method: $("method").value, ...(target === "" ? {} : { target }) });
}

async function refresh() {
  if (!state.blob) return;
  const seq = ++state.seq, xseq = ++state.xseq;
  showError("");
  const predict = api("/api/predict", { method: "POST", body: form() });
  // an ONNX model predicts only: explanations need the torch model
  const explain = state.model.methods.length ? api("/api/explain", { method: "POST", body: explainForm() }) : null;
  if (explain) explain.catch(() => {}); // handled below, or dropped with its image when predict fails
  try {
    const p = await predict;
    if (seq !== state.seq) return;
    showPrediction(p);
  } catch (e) {
    if (seq === state.seq) failed(e.message);
    return;
  }
  if (explain) await showExplain(explain, seq, xseq);
}

async function showExplain(request, seq, xseq) {
  try {
    const x = await request;
    if (seq === state.seq && xseq === state.xseq) showExplanation(x);
  } catch (e) {
    if (seq === state.seq && xseq === state.xseq) failed(e.message);
  }
}

function reexplain() { // another method or class: the prediction stands, the explanation is asked again
  if (!state.blob || !state.model.methods.length) return;
  const xseq = ++state.xseq;
  showExplain(api("/api/explain", { method: "POST", body: explainForm() }), state.seq, xseq);
}

window.cnnlabUpdates = 0; // how many predictions were shown (the browser test waits on it)

function showPrediction(p) {
  window.cnnlabUpdates += 1;
  $("prediction").dataset.model = p.model;
  if (p.task === "detect") return showObjects(p);
  if (p.task === "segment") return showMask(p);
  showClasses(p); // classify, and localize: its class and top classes, then its box
  if (p.task === "localize") showBoxes(p, [{ class: p.class, index: p.index, score: p.probability, box: p.box }]);
}

function showClasses(p) {
  const top = p.top, best = top[0];
  const box = $("prediction");
  box.className = "prediction";
  box.replaceChildren(best.class, element("small", { textContent: pct(best.probability) }));
  box.dataset.class = best.class;
  $("bars").replaceChildren(...top.map((t, i) => {
    const fill = element("span", { className: "fill" });
    fill.style.width = Math.max(0.5, 100 * t.probability) + "%";
    return element("div", { className: "bar" + (i === 0 ? " best" : "") },
      element("span", { className: "name", textContent: t.class, title: t.class }),
      element("span", { className: "track" }, fill),
      element("span", { className: "pct", textContent: pct(t.probability) }));
  }));
  const data = state.model.dataset ? `the ${state.model.dataset} images` : "the images";
  notes(p, best.probability < UNSURE ? `Unsure: the top class has only ${pct(best.probability)}. The input may be ` +
    `unlike ${data} the model learned from; a network always names one of its classes, even for something it never saw.`
    : "");
}

// ---- the overlay of another task's prediction ----

const overlay = $("overlay");
window.cnnlabOverlays = 0; // how many overlays were drawn (the browser test waits on it)

function overlayContext() { // the overlay at its displayed size in screen pixels, drawn in the canvas's 280 units
  const side = Math.round((overlay.clientWidth || SIDE) * (window.devicePixelRatio || 1));
  overlay.width = overlay.height = side;
  const c = overlay.getContext("2d");
  c.setTransform(side / SIDE, 0, 0, side / SIDE, 0, 0);
  return c;
}

function clearOverlay() { overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height); }

function notes(p, hint) {
  const shown = state.source === "canvas" ? [] : [state.note, ...p.notes].filter(Boolean);
  $("notes").textContent = shown.join("; ");
  const blankNote = p.notes.find((n) => n.includes("blank"));
  $("hint").textContent = blankNote ? `Note: ${blankNote}.` : hint || "";
}

function swatch(colour) {
  const s = element("span", { className: "swatch" });
  s.style.background = colour;
  return s;
}

function legendRow(colour, name, num, where, absent = false) {
  const row = element("li", { className: absent ? "absent" : "" }, swatch(colour),
    element("span", { className: "name", textContent: name, title: name }),
    element("span", { className: "num", textContent: num }), element("span", { className: "where", textContent: where }));
  row.dataset.class = name;
  return row;
}

function headline(text, small) {
  const box = $("prediction");
  box.className = "prediction";
  box.replaceChildren(text, ...(small ? [element("small", { textContent: small })] : []));
}

function inkOn(colour) { // black on the light drawing colours (lime, cyan, orange), white on the dark ones
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff";
}

function overlaps(a, b) { return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h; }

// Where each box's label goes, best first: above the box, else inside its top, else below it, the first place that
// no label placed before covers (the last one tried when all are taken); x within the canvas.
function labelPlaces(c, boxes) {
  const placed = [];
  for (const b of boxes) {
    const w = c.measureText(b.label).width + 8, h = 15, x = Math.max(0, Math.min(b.x1, SIDE - w));
    const tries = [b.y1 - h, b.y1 + 2, b.y2 + 1].filter((y) => y >= 0 && y + h <= SIDE);
    const rects = (tries.length ? tries : [Math.max(0, b.y1 - h)]).map((y) => ({ x, y, w, h }));
    placed.push(rects.find((r) => !placed.some((q) => overlaps(r, q))) || rects[rects.length - 1]);
  }
  return placed;
}

function showBoxes(p, objects) { // boxes in the model's input pixels → the canvas's 280 units
  const [, h, w] = state.model.input_size;
  const c = overlayContext();
  c.font = "600 11px system-ui, sans-serif";
  c.textBaseline = "top";
  const boxes = objects.map((o) => ({
    colour: state.model.colours[o.index], label: `${o.class} ${pct(o.score)}`,
    x1: o.box[0] * SIDE / w, y1: o.box[1] * SIDE / h, x2: o.box[2] * SIDE / w, y2: o.box[3] * SIDE / h,
  }));
  const places = labelPlaces(c, boxes);
  c.lineWidth = 2;
  for (let i = boxes.length - 1; i >= 0; i--) { // the best drawn last, on top
    const b = boxes[i];
    c.strokeStyle = b.colour;
    c.strokeRect(b.x1 + 1, b.y1 + 1, Math.max(0, b.x2 - b.x1 - 2), Math.max(0, b.y2 - b.y1 - 2));
  }
  for (let i = boxes.length - 1; i >= 0; i--) { // labels over every outline
    const b = boxes[i], r = places[i];
    c.fillStyle = b.colour;
    c.fillRect(r.x, r.y, r.w, r.h);
    c.fillStyle = inkOn(b.colour);
    c.fillText(b.label, r.x + 4, r.y + 2);
  }
  window.cnnlabOverlays += 1;
  $("legend").replaceChildren(...objects.map((o) => legendRow(state.model.colours[o.index], o.class, pct(o.score),
    `x ${o.box[0].toFixed(0)}–${o.box[2].toFixed(0)}, y ${o.box[1].toFixed(0)}–${o.box[3].toFixed(0)} px`)));
}

function showObjects(p) {
  const n = p.objects.length, threshold = state.model.task_args.score;
  headline(n ? `${n} object${n === 1 ? "" : "s"}` : "No object", `score ≥ ${threshold}`);
  $("prediction").dataset.objects = String(n);
  $("bars").replaceChildren();
  showBoxes(p, p.objects);
  notes(p, n ? "" : `No object scored ${threshold} or more: the model found nothing it knows in this image.`);
}

function showMask(p) {
  const m = state.model, seq = state.seq, total = Object.values(p.pixels).reduce((a, b) => a + b, 0);
  const found = Object.keys(p.pixels).filter((c) => c !== m.classes[0]);
  headline(found.length ? found.slice(0, 3).join(", ") + (found.length > 3 ? ", …" : "") : "Only background",
           found.length ? `${found.length} class${found.length === 1 ? "" : "es"}` : "");
  $("prediction").dataset.classes = found.join(",");
  $("bars").replaceChildren();
  const share = (n) => (100 * n / total).toFixed(1) + " %";
  const present = Object.entries(p.pixels).map(([name, n]) =>
    legendRow(m.colours[m.classes.indexOf(name)], name, n.toLocaleString("en"), share(n) + " of the pixels" +
              (name === m.classes[0] ? " (not coloured)" : "")));
  const absent = m.classes.filter((name) => !(name in p.pixels)).map((name) =>
    legendRow(m.colours[m.classes.indexOf(name)], name, "0", "", true));
  $("legend").replaceChildren(...present, ...absent);
  notes(p, found.length ? "" : "Every pixel was given to the background: the model found no object in this image.");
  const mask = new Image();
  mask.onload = () => {
    if (seq !== state.seq) return; // another image or model meanwhile
    const c = overlayContext();
    c.imageSmoothingEnabled = false; // one model pixel = one block of colour, as the network decided it
    c.globalAlpha = MASK_OPACITY;
    c.drawImage(mask, 0, 0, SIDE, SIDE);
    window.cnnlabOverlays += 1;
  };
  mask.src = p.mask_png;
}

function showExplanation(x) {
  const [c, h, w] = state.model.input_size;
  setPicture("seen", x.input_png, "the input as the network sees it");
  $("seen-caption").textContent = `the network's input, ${w}×${h} ${c === 1 ? "gray" : "RGB"}`;
  setPicture("saliency", x.overlay_png, `saliency of ${x.target.class} over the input`);
  $("saliency").dataset.method = x.method;
  $("saliency").dataset.target = x.target.class;
  $("target").textContent = x.target.class;
  const f = x.feature_maps;
  if (!f) { $("features").replaceChildren(placeholder("no feature maps")); return; }
  $("layer").textContent = `${f.layer}: ${f.pngs.length < f.count ? "first " + f.pngs.length + " of " : ""}${f.count} maps of ${f.shape.join("×")}`;
  $("features").replaceChildren(...f.pngs.map((src, i) =>
    element("figure", {}, element("img", { src, alt: `feature map ${i}` }), element("figcaption", { textContent: i }))));
  $("feature-min").textContent = f.range[0].toPrecision(2);
  $("feature-max").textContent = f.range[1].toPrecision(2);
  $("features-legend").hidden = false;
}

$("method").addEventListener("change", reexplain);
$("target-class").addEventListener("change", reexplain);

resetResults();
loadModels().catch((e) => failed("could not load the models: " + e.message));
