// imgfeat flim annotate: draw FLIM markers. Plain JavaScript, no build step, nothing fetched
// from elsewhere. The server knows images by index only; this page never sends a path.
"use strict";

const COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
  "#bfef45", "#9a6324"];
const SAVE_DELAY_MS = 800;
const $ = (id) => document.getElementById(id);

const app = {
  session: null,        // /api/session
  index: -1,            // current image
  states: new Map(),    // index -> ImageState (mask + history), kept while the page lives
  cls: 1,               // current class, 1-based (0 in the mask = unmarked)
  erasing: false,
  brush: 3,             // brush diameter in image pixels
  eraser: 9,            // eraser diameter in image pixels
  zoom: 1, panX: 0, panY: 0,
  space: false, pan: null,
  stroke: null,         // the stroke being drawn
  pending: [],          // pointer positions not yet painted
  frame: 0,             // requestAnimationFrame id of the next paint
  overlay: null,        // ImageData of the overlay canvas (image size)
  saveTimer: 0,
  learning: false,
};

// ------------------------------------------------------------------------------------------
// Per-image state: a label mask and its stroke-level history

class ImageState {
  constructor(w, h, pixels, labels, ncls, saved = "") {
    this.w = w; this.h = h;
    this.saved = saved;                     // the server's version of these markers (stale saves are refused)
    this.saving = null;                     // the save of this image in flight (never two at once)
    this.mask = new Uint8Array(w * h);
    this.touched = new Uint8Array(w * h);  // pixels already recorded by the current stroke
    this.counts = new Array(ncls + 1).fill(0);
    for (let k = 0; k < pixels.length; k++) this.mask[pixels[k]] = labels[k] + 1;
    for (let k = 0; k < pixels.length; k++) this.counts[labels[k] + 1]++;
    this.undo = []; this.redo = [];
    this.dirty = false;
    this.version = 0;                       // bumps on every change (autosave races)
  }
  // apply a history entry forward (value) or backward (old values); returns its bounding box
  apply(entry, forward) {
    const { idx, old, val } = entry;
    const m = this.mask, c = this.counts;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k], from = m[i], to = forward ? val : old[k];
      c[from]--; c[to]++; m[i] = to;
    }
    this.version++; this.dirty = true;
    return entry.box;
  }
}

function stampOffsets(d) {
  // pixels of a disk of diameter d (image pixels), relative to its top-left corner
  const out = [], r = d / 2;
  for (let y = 0; y < d; y++) {
    for (let x = 0; x < d; x++) {
      const dx = x + 0.5 - r, dy = y + 0.5 - r;
      if (dx * dx + dy * dy <= r * r) out.push(x, y);
    }
  }
  return Int32Array.from(out);
}

const stamps = new Map();
function stamp(d) {
  if (!stamps.has(d)) stamps.set(d, stampOffsets(d));
  return stamps.get(d);
}

// ------------------------------------------------------------------------------------------
// Painting: positions are queued by pointer events and painted once per animation frame

function current() { return app.states.get(app.index); }
function size() { return app.erasing ? app.eraser : app.brush; }

function beginStroke(p) {
  const st = current();
  if (!st) return;
  const d = size();
  app.stroke = { idx: [], old: [], val: app.erasing ? 0 : app.cls, d, offs: stamp(d), last: null,
    box: [Infinity, Infinity, -Infinity, -Infinity] };
  queue(p);
}

function queue(p) {
  app.pending.push(p);
  if (!app.frame) app.frame = requestAnimationFrame(flush);
}

function stampAt(st, s, cx, cy, box) {
  const x0 = Math.round(cx - s.d / 2), y0 = Math.round(cy - s.d / 2);
  const { w, h, mask, touched, counts } = st, offs = s.offs, val = s.val;
  for (let k = 0; k < offs.length; k += 2) {
    const x = x0 + offs[k], y = y0 + offs[k + 1];
    if (x < 0 || y < 0 || x >= w || y >= h) continue;
    const i = y * w + x, from = mask[i];
    if (from === val) continue;
    if (!touched[i]) { touched[i] = 1; s.idx.push(i); s.old.push(from); }
    mask[i] = val; counts[from]--; counts[val]++;
  }
  if (x0 < box[0]) box[0] = x0;
  if (y0 < box[1]) box[1] = y0;
  if (x0 + s.d > box[2]) box[2] = x0 + s.d;
  if (y0 + s.d > box[3]) box[3] = y0 + s.d;
}

// paint every queued position (interpolated from the previous one) in one batch
function flush() {
  app.frame = 0;
  const s = app.stroke, st = current();
  if (!s || !st || !app.pending.length) { app.pending.length = 0; return; }
  const box = [Infinity, Infinity, -Infinity, -Infinity];
  const step = Math.max(1, s.d / 4);
  for (const p of app.pending) {
    if (!s.last) { stampAt(st, s, p.x, p.y, box); s.last = p; continue; }
    const dx = p.x - s.last.x, dy = p.y - s.last.y;
    const n = Math.max(1, Math.ceil(Math.hypot(dx, dy) / step));
    for (let k = 1; k <= n; k++) stampAt(st, s, s.last.x + dx * k / n, s.last.y + dy * k / n, box);
    s.last = p;
  }
  app.pending.length = 0;
  st.version++;
  for (let k = 0; k < 4; k++) s.box[k] = k < 2 ? Math.min(s.box[k], box[k]) : Math.max(s.box[k], box[k]);
  redraw(box);
  updateCounts();
}

function endStroke() {
  const s = app.stroke;
  if (!s) return;
  if (app.frame) { cancelAnimationFrame(app.frame); flush(); }
  app.stroke = null;
  const st = current();
  if (!st || !s.idx.length) return;
  const idx = Int32Array.from(s.idx);
  for (let k = 0; k < idx.length; k++) st.touched[idx[k]] = 0;
  st.undo.push({ idx, old: Uint8Array.from(s.old), val: s.val, box: s.box });
  st.redo.length = 0;
  changed(st);
}

function undo() { travel(current(), "undo", "redo", false); }
function redo() { travel(current(), "redo", "undo", true); }
function travel(st, from, to, forward) {
  if (!st || app.stroke || !st[from].length) return;
  const entry = st[from].pop();
  st[to].push(entry);
  redraw(st.apply(entry, forward));
  changed(st);
}

function clearImage() {
  const st = current();
  if (!st || app.stroke) return;
  const idx = [], old = [];
  for (let i = 0; i < st.mask.length; i++) if (st.mask[i]) { idx.push(i); old.push(st.mask[i]); }
  if (!idx.length) return;
  const entry = { idx: Int32Array.from(idx), old: Uint8Array.from(old), val: 0, box: [0, 0, st.w, st.h] };
  st.undo.push(entry); st.redo.length = 0;
  redraw(st.apply(entry, true));
  changed(st);
}

function changed(st) {
  st.dirty = true; st.version++;
  updateCounts();
  setStatus("dirty", "unsaved changes");
  clearTimeout(app.saveTimer);
  app.saveTimer = setTimeout(() => save(), SAVE_DELAY_MS);
  updateButtons();
}

// ------------------------------------------------------------------------------------------
// Drawing the overlay: one RGBA word per mask value, only inside the changed box

let palette = new Uint32Array(10);
function buildPalette() {
  palette = new Uint32Array(10);
  const little = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  COLORS.forEach((hex, k) => {
    const r = parseInt(hex.slice(1, 3), 16), g = parseInt(hex.slice(3, 5), 16), b = parseInt(hex.slice(5, 7), 16);
    palette[k + 1] = little ? ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0 : ((r << 24) | (g << 16) | (b << 8) | 255) >>> 0;
  });
}

function redraw(box) {
  const st = current();
  if (!st || !app.overlay) return;
  const x0 = Math.max(0, Math.floor(box[0])), y0 = Math.max(0, Math.floor(box[1]));
  const x1 = Math.min(st.w, Math.ceil(box[2])), y1 = Math.min(st.h, Math.ceil(box[3]));
  if (x1 <= x0 || y1 <= y0) return;
  const px = new Uint32Array(app.overlay.data.buffer), m = st.mask, w = st.w;
  for (let y = y0; y < y1; y++) {
    let i = y * w + x0;
    for (let x = x0; x < x1; x++, i++) px[i] = palette[m[i]];
  }
  $("overlay").getContext("2d").putImageData(app.overlay, 0, 0, x0, y0, x1 - x0, y1 - y0);
}

// ------------------------------------------------------------------------------------------
// View: zoom (wheel) and pan (space+drag), the cursor at its true size

function applyView() {
  $("world").style.transform = `translate(${app.panX}px, ${app.panY}px) scale(${app.zoom})`;
  $("cursor").style.outlineWidth = `${1 / app.zoom}px`;
}

function fit() {
  const st = current();
  if (!st) return;
  const r = $("stage").getBoundingClientRect();
  app.zoom = Math.min(r.width / st.w, r.height / st.h) * 0.96;
  app.panX = (r.width - st.w * app.zoom) / 2;
  app.panY = (r.height - st.h * app.zoom) / 2;
  applyView();
}

function toImage(ev) {
  const r = $("stage").getBoundingClientRect();
  return { x: (ev.clientX - r.left - app.panX) / app.zoom, y: (ev.clientY - r.top - app.panY) / app.zoom };
}

function drawCursor() {
  // a canvas of d x d image pixels showing exactly the pixels a stamp paints
  const c = $("cursor"), d = size(), offs = stamp(d);
  c.width = d; c.height = d;
  const ctx = c.getContext("2d");
  ctx.fillStyle = app.erasing ? "rgba(255,255,255,0.55)" : COLORS[app.cls - 1] + "aa";
  for (let k = 0; k < offs.length; k += 2) ctx.fillRect(offs[k], offs[k + 1], 1, 1);
  c.style.width = `${d}px`; c.style.height = `${d}px`;
  c.style.outlineColor = app.erasing ? "#000" : "#fff";
}

function moveCursor(p) {
  const c = $("cursor"), d = size();
  c.style.left = `${Math.round(p.x - d / 2)}px`;
  c.style.top = `${Math.round(p.y - d / 2)}px`;
  c.style.display = "";
  const st = current();
  if (st) {
    const x = Math.floor(p.x), y = Math.floor(p.y);
    const inside = x >= 0 && y >= 0 && x < st.w && y < st.h;
    $("info").textContent = inside ? `x ${x}  y ${y}  ·  zoom ${(app.zoom * 100).toFixed(0)}%  ·  ` +
      `${app.erasing ? "eraser" : app.session.labels[app.cls - 1]} ${d} px` : "";
  }
}

function setupStage() {
  const stage = $("stage");
  stage.addEventListener("pointerdown", (ev) => {
    stage.focus();
    if (app.space || ev.button === 1) {
      app.pan = { x: ev.clientX - app.panX, y: ev.clientY - app.panY };
      try { stage.setPointerCapture(ev.pointerId); } catch (_) { /* a synthetic pointer */ }
      ev.preventDefault();
      return;
    }
    if (ev.button !== 0) return;
    try { stage.setPointerCapture(ev.pointerId); } catch (_) { /* a synthetic pointer */ }
    beginStroke(toImage(ev));
  });
  stage.addEventListener("pointermove", (ev) => {
    if (app.pan) {
      app.panX = ev.clientX - app.pan.x; app.panY = ev.clientY - app.pan.y;
      applyView();
      return;
    }
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
    if (app.stroke) for (const e of (events.length ? events : [ev])) queue(toImage(e));
    moveCursor(toImage(ev));
  });
  const stop = () => { app.pan = null; endStroke(); };
  stage.addEventListener("pointerup", stop);
  stage.addEventListener("pointercancel", stop);
  stage.addEventListener("pointerleave", () => { if (!app.stroke) $("cursor").style.display = "none"; });
  stage.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = stage.getBoundingClientRect();
    const sx = ev.clientX - r.left, sy = ev.clientY - r.top;
    const ix = (sx - app.panX) / app.zoom, iy = (sy - app.panY) / app.zoom;
    app.zoom = Math.min(64, Math.max(0.02, app.zoom * Math.pow(1.2, -ev.deltaY / 100)));
    app.panX = sx - ix * app.zoom; app.panY = sy - iy * app.zoom;
    applyView();
    moveCursor(toImage(ev));
  }, { passive: false });
}

// ------------------------------------------------------------------------------------------
// Tools and keys

function setClass(k) {
  if (k < 1 || k > app.session.labels.length) return;
  app.cls = k; app.erasing = false;
  updateTools();
}

function setSize(d) {
  d = Math.max(1, Math.min(500, Math.round(d)));
  if (app.erasing) app.eraser = d; else app.brush = d;
  updateTools();
}

function resize(dir) {
  const d = size(), step = d < 10 ? 1 : Math.max(1, Math.round(d * 0.15));
  setSize(d + dir * step);
}

function updateTools() {
  document.querySelectorAll("#classes button").forEach((b, k) => {
    b.classList.toggle("active", !app.erasing && app.cls === k + 1);
  });
  $("eraser").classList.toggle("active", app.erasing);
  $("size").value = size();
  drawCursor();
}

function setupKeys() {
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT") && t.type !== "range") return;
    const ctrl = ev.ctrlKey || ev.metaKey, key = ev.key.toLowerCase();
    if (ctrl && key === "z") { ev.preventDefault(); if (ev.shiftKey) redo(); else undo(); return; }
    if (ctrl && key === "y") { ev.preventDefault(); redo(); return; }
    if (ctrl && key === "s") { ev.preventDefault(); save(); return; }
    if (ctrl || ev.altKey) return;
    if (ev.code === "Space") {
      ev.preventDefault();
      app.space = true; $("stage").classList.add("panning");
      return;
    }
    if (/^[1-9]$/.test(ev.key)) setClass(Number(ev.key));
    else if (key === "e") { app.erasing = !app.erasing; updateTools(); }
    else if (ev.key === "[") resize(-1);
    else if (ev.key === "]") resize(1);
    else if (key === "f") fit();
  });
  document.addEventListener("keyup", (ev) => {
    if (ev.code === "Space") { app.space = false; $("stage").classList.remove("panning"); }
  });
}

function setupToolbar() {
  const labels = app.session.labels;
  const box = $("classes");
  box.replaceChildren();
  labels.forEach((name, k) => {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = `${k + 1} ${name}`; b.style.background = COLORS[k];
    b.title = `class ${name} (${k + 1})`;
    b.addEventListener("click", () => setClass(k + 1));
    box.append(b);
  });
  $("eraser").addEventListener("click", () => { app.erasing = !app.erasing; updateTools(); });
  $("size").addEventListener("change", (ev) => setSize(Number(ev.target.value) || 1));
  $("opacity").addEventListener("input", (ev) => { $("overlay").style.opacity = ev.target.value; });
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  $("clear").addEventListener("click", clearImage);
  $("fit").addEventListener("click", fit);
  $("save").addEventListener("click", () => save());
  $("learn-btn").addEventListener("click", learn);
  updateTools();
}

function updateButtons() {
  const st = current();
  $("undo").disabled = !st || !st.undo.length;
  $("redo").disabled = !st || !st.redo.length;
}

// ------------------------------------------------------------------------------------------
// Progress: the image list, counts per class, warnings

function updateCounts() {
  const st = current();
  if (st) app.session.images[app.index].counts = st.counts.slice(1);
  renderList();
}

function chips(counts) {
  return counts.map((n, k) => `<span class="chip${n ? "" : " zero"}" style="background:${COLORS[k]}"` +
    ` title="${escapeHtml(app.session.labels[k])}">${n}</span>`).join("");
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function renderList() {
  const s = app.session, budget = s.budget;
  const ul = $("images");
  if (ul.children.length !== s.images.length) {
    ul.replaceChildren(...s.images.map((im) => {
      const li = document.createElement("li");
      li.dataset.index = im.index;
      li.addEventListener("click", () => openImage(im.index));
      return li;
    }));
  }
  const totals = s.labels.map(() => 0);
  let marked = 0;
  s.images.forEach((im, i) => {
    const n = im.counts.reduce((a, b) => a + b, 0);
    if (n) marked++;
    im.counts.forEach((c, k) => { totals[k] += c; });
    const over = budget && n > budget ? ` <span class="warn" title="over the budget of ${budget} pixels">⚠ ${n} &gt; ${budget}</span>` : "";
    const li = ul.children[i];
    li.classList.toggle("current", i === app.index);
    li.innerHTML = `<span class="name" title="${escapeHtml(im.id)}">${escapeHtml(im.id)}</span>${chips(im.counts)}${over}`;
  });
  $("progress").textContent = `${marked} / ${s.images.length} images marked`;
  const warn = s.labels.map((name, k) => totals[k] ? "" : `<p>⚠ no markers of class “${escapeHtml(name)}” yet</p>`);
  $("warnings").innerHTML = warn.join("");
}

// ------------------------------------------------------------------------------------------
// Server: loading, saving, learning

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state; el.textContent = text;
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(body.error || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

const WRITE = { "Content-Type": "application/json", "X-Imgfeat": "1" };

async function save(index = app.index) {
  clearTimeout(app.saveTimer);
  const st = app.states.get(index);
  if (!st) return;
  while (st.saving) await st.saving;         // one save of an image at a time, in order
  if (!st.dirty) { if (index === app.index) setStatus("saved", "saved"); return; }
  const version = st.version, pixels = [], labels = [];
  const m = st.mask;
  for (let i = 0; i < m.length; i++) if (m[i]) { pixels.push(i); labels.push(m[i] - 1); }
  if (index === app.index) setStatus("saving", "saving…");
  st.saving = (async () => {
    try {
      const r = await api(`/api/images/${index}/markers`, { method: "PUT", headers: WRITE,
        body: JSON.stringify({ pixels, labels, version: st.saved }) });
      st.saved = r.version;
      if (st.version === version) st.dirty = false;
      app.session.images[index].counts = r.counts;
      if (index === app.index) setStatus(st.dirty ? "dirty" : "saved", st.dirty ? "unsaved changes" : `saved ${r.file}`);
      renderList();
    } catch (err) {
      if (err.status === 409) await reload(index, err.message);
      else setStatus("error", `not saved: ${err.message}`);
    } finally {
      st.saving = null;
    }
  })();
  await st.saving;
}

async function reload(index, why) {
  // another tab or script saved this image since its markers were loaded: show what was saved
  const markers = await api(`/api/images/${index}/markers`);
  const old = app.states.get(index);
  if (old) old.dirty = false;                // saves waiting on the old state have nothing to send
  app.states.set(index, new ImageState(markers.width, markers.height, markers.pixels, markers.labels,
    app.session.labels.length, markers.version));
  app.session.images[index].counts = app.states.get(index).counts.slice(1);
  if (index === app.index) {
    app.overlay = new ImageData(markers.width, markers.height);
    redraw([0, 0, markers.width, markers.height]);
    updateButtons();
    updateCounts();
    setStatus("error", `not saved, reloaded the saved markers: ${why}`);
  }
  renderList();
}

async function openImage(index) {
  if (index === app.index || app.stroke) return;
  if (current() && current().dirty) await save();
  setStatus("loading", "loading…");
  const [markers, img] = await Promise.all([
    app.states.has(index) ? null : api(`/api/images/${index}/markers`),
    loadImage(`/api/images/${index}/image`),
  ]).catch((err) => { setStatus("error", err.message); return [undefined, undefined]; });
  if (img === undefined) return;
  if (!app.states.has(index)) {
    app.states.set(index, new ImageState(markers.width, markers.height, markers.pixels, markers.labels,
      app.session.labels.length, markers.version));
  }
  app.index = index;
  const st = current();
  for (const id of ["image", "overlay"]) { $(id).width = st.w; $(id).height = st.h; }
  $("image").getContext("2d").drawImage(img, 0, 0);
  app.overlay = new ImageData(st.w, st.h);
  redraw([0, 0, st.w, st.h]);
  fit();
  const file = app.session.images[index].file;
  $("download").href = `/api/files/${encodeURIComponent(file)}`;
  $("download").textContent = file;
  window.history.replaceState(null, "", `#${index}`);
  setStatus(st.dirty ? "dirty" : "saved", st.dirty ? "unsaved changes" : "saved");
  updateButtons();
  updateCounts();
  $("maps").replaceChildren();
  $("learn-info").textContent = "";
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load ${url}`));
    img.src = url;
  });
}

async function learn() {
  if (app.learning) return;
  app.learning = true;
  $("learn-btn").disabled = true;
  $("learn-info").textContent = "learning…";
  try {
    for (const [i, st] of app.states) if (st.dirty) await save(i);
    const r = await api("/api/learn", { method: "POST", headers: WRITE,
      body: JSON.stringify({ index: app.index, layer: $("layer").value }) });
    const sel = $("layer"), keep = sel.value;
    sel.replaceChildren(new Option("last", ""), ...r.layers.map((n) => new Option(n, n)));
    sel.value = keep;
    $("learn-info").textContent = `learned from ${r.images} image(s) in ${r.seconds} s · ${r.layer} ` +
      `(${r.shape.join("×")}), strongest ${r.maps.length} channels`;
    $("maps").replaceChildren(...r.maps.map((url, k) => {
      const fig = document.createElement("figure");
      const im = document.createElement("img");
      im.src = url; im.alt = `channel ${r.channels[k]}`;
      const cap = document.createElement("figcaption");
      cap.textContent = `channel ${r.channels[k]}`;
      fig.append(im, cap);
      return fig;
    }));
  } catch (err) {
    $("learn-info").textContent = `cannot learn: ${err.message}`;
  } finally {
    app.learning = false;
    $("learn-btn").disabled = false;
  }
}

async function main() {
  buildPalette();
  app.session = await api("/api/session");
  setupToolbar();
  setupStage();
  setupKeys();
  renderList();
  const start = Number(location.hash.slice(1));
  await openImage(Number.isInteger(start) && start >= 0 && start < app.session.images.length ? start : 0);
  document.body.dataset.ready = "1";
}

window.addEventListener("beforeunload", (ev) => {
  if ([...app.states.values()].some((st) => st.dirty)) { save(); ev.preventDefault(); }
});

// for scripted checks (tests, the painting-speed benchmark): the state and a synchronous paint
window.annotator = { app, flush, current };
main().catch((err) => setStatus("error", err.message));
