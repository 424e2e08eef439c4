// cnnlab serve: the page. Plain JavaScript, no build step, nothing fetched but this server's /api/.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], model: null, blob: null, seq: 0, timer: null, drawing: false, last: null, dirty: false };
const SIDE = 280; // canvas pixels

function pct(p) { return (100 * p).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + " %"; }

function showError(message) { $("error").textContent = message || ""; }

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) throw new Error(body.error || body.detail || response.statusText);
  return body;
}

// ---- models ----

function describe(m) {
  const [c, h, w] = m.input_size;
  const acc = m.test_accuracy == null ? "–" : (100 * m.test_accuracy).toFixed(2) + " %";
  const classes = m.classes.length <= 12 ? m.classes.join(", ") : m.classes.length + " classes";
  $("model-info").innerHTML = "";
  const parts = [["", m.model], ["input ", `${c}×${h}×${w} ${c === 1 ? "gray" : "RGB"}`], ["test accuracy ", acc],
                 ["data ", m.dataset || "–"], ["classes ", classes]];
  parts.forEach(([label, value], i) => {
    if (i) $("model-info").append(" · ");
    $("model-info").append(label);
    const b = document.createElement("b");
    b.textContent = value;
    $("model-info").append(b);
  });
}

function selectModel(id) {
  state.model = state.models.find((m) => m.id === id) || state.models[0];
  describe(state.model);
  const gray = state.model.channels === 1;
  $("draw-box").hidden = !gray;
  $("draw-note").hidden = gray;
  $("truth").textContent = "";
  clearCanvas();
  if (state.blob) refresh();
}

async function loadModels() {
  const { models } = await api("/api/models");
  state.models = models;
  const select = $("model");
  for (const m of models) {
    const option = document.createElement("option");
    option.value = m.id;
    option.textContent = m.id === m.model ? m.id : `${m.id} (${m.model})`;
    select.append(option);
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

function useCanvas() {
  if (!state.dirty) return;
  let source = canvas;
  if (paper()) { // dark on light → light on dark, the MNIST / Fashion-MNIST convention
    source = document.createElement("canvas");
    source.width = source.height = SIDE;
    const c = source.getContext("2d");
    c.filter = "invert(1)";
    c.drawImage(canvas, 0, 0);
  }
  source.toBlob((blob) => { $("truth").textContent = ""; setImage(blob, "canvas"); }, "image/png");
}

$("clear").addEventListener("click", () => { clearCanvas(); });
$("stroke").addEventListener("input", () => { $("stroke-value").textContent = $("stroke").value; });
$("invert").addEventListener("change", () => { clearCanvas(); });

// ---- files and test images ----

async function showOnCanvas(blob) { // a file or test image becomes the drawing, so strokes can be added to it
  if (state.model.channels !== 1) return;
  try {
    const bitmap = await createImageBitmap(blob);
    $("invert").checked = false;
    clearCanvas();
    const k = Math.min(SIDE / bitmap.width, SIDE / bitmap.height);
    const w = bitmap.width * k, h = bitmap.height * k;
    ctx.imageSmoothingEnabled = k < 1;
    ctx.drawImage(bitmap, (SIDE - w) / 2, (SIDE - h) / 2, w, h);
  } catch (e) { /* not decodable by the browser: the server says why */ }
}

function useFile(file) {
  if (!file) return;
  $("truth").textContent = "";
  showOnCanvas(file);
  setImage(file);
}

$("file").addEventListener("change", (e) => useFile(e.target.files[0]));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  useFile(e.dataTransfer.files[0]);
});

$("random").addEventListener("click", async () => {
  try {
    const r = await api(`/api/models/${encodeURIComponent(state.model.id)}/random`);
    const blob = await (await fetch(r.image_png)).blob();
    $("truth").textContent = "";
    const label = document.createElement("span");
    label.textContent = `test image #${r.index}, true label: `;
    const b = document.createElement("b");
    b.textContent = r.label.class;
    $("truth").append(label, b);
    showOnCanvas(blob);
    setImage(blob);
  } catch (e) {
    $("truth").textContent = e.message;
  }
});

// ---- results ----

function setImage(blob, source = "file") {
  state.blob = blob;
  state.source = source; // the canvas's own conversion (280×280 RGBA → the model's input) needs no note
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

async function refresh() {
  if (!state.blob) return;
  const seq = ++state.seq;
  showError("");
  const predict = api("/api/predict", { method: "POST", body: form() });
  // an ONNX model predicts only: explanations need the torch model
  const explain = state.model.methods.length ? api("/api/explain", { method: "POST", body: form({ method: $("method").value }) }) : null;
  try {
    const p = await predict;
    if (seq !== state.seq) return;
    showPrediction(p.top);
    $("notes").textContent = state.source === "canvas" ? "" : p.notes.join("; ");
  } catch (e) {
    if (seq === state.seq) showError(e.message);
  }
  if (!explain) return;
  try {
    const x = await explain;
    if (seq !== state.seq) return;
    showExplanation(x);
  } catch (e) {
    if (seq === state.seq) showError(e.message);
  }
}

window.cnnlabUpdates = 0; // how many predictions were shown (the browser test waits on it)

function showPrediction(top) {
  window.cnnlabUpdates += 1;
  const best = top[0];
  const box = $("prediction");
  box.textContent = best.class;
  const small = document.createElement("small");
  small.textContent = pct(best.probability);
  box.append(small);
  box.dataset.class = best.class;
  const bars = $("bars");
  bars.innerHTML = "";
  top.forEach((t, i) => {
    const row = document.createElement("div");
    row.className = "bar" + (i === 0 ? " best" : "");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = t.class;
    name.title = t.class;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.display = "block";
    fill.style.width = Math.max(0.5, 100 * t.probability) + "%";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "pct";
    value.textContent = pct(t.probability);
    row.append(name, track, value);
    bars.append(row);
  });
}

function showExplanation(x) {
  const [c, h, w] = state.model.input_size;
  $("seen").src = x.input_png;
  $("seen-caption").textContent = `the network's input, ${w}×${h} ${c === 1 ? "gray" : "RGB"}`;
  $("saliency").src = x.overlay_png;
  $("saliency").dataset.method = x.method;
  $("target").textContent = x.target.class;
  const f = x.feature_maps;
  const grid = $("features");
  grid.innerHTML = "";
  if (!f) return;
  $("layer").textContent = `${f.layer}: ${f.pngs.length < f.count ? "first " + f.pngs.length + " of " : ""}${f.count} maps of ${f.shape.join("×")}, one colour scale`;
  f.pngs.forEach((src, i) => {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = src;
    img.alt = `feature map ${i}`;
    const cap = document.createElement("figcaption");
    cap.textContent = i;
    fig.append(img, cap);
    grid.append(fig);
  });
}

$("method").addEventListener("change", refresh);

loadModels().catch((e) => showError("could not load the models: " + e.message));
