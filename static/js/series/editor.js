// The series viewer's editor (issue 20): the slice editor's view, tools, history and pointer input
// (static/js/editor/) on any slice of a series.  Each slice keeps its own labels and undo history
// while you move through the series; Save sends only the slices that changed
// (PUT /series/<id>/slices/labels/) and the page reloads with every figure recomputed.  Removing a
// 3-D lesion and interpolating between two saved slices are done on the server.
import { History } from "../editor/history.js";
import { loadHu, loadLabels } from "../editor/api.js";
import { bindPointer } from "../editor/pointer.js";
import { fillOutline, removeLesion } from "../editor/tools.js";
import { View, WINDOWS, windowed } from "../editor/view.js";

const $ = (id) => document.getElementById(id);
const slicePath = (url, index) => url.replace("/slices/0/", `/slices/${index}/`);

// A label map (0/1/2) as the grey PNG the server reads (0 / 128 / 255), base64 without the prefix.
function labelPng(labels, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  const grey = [0, 128, 255];
  for (let i = 0; i < labels.length; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey[labels[i]];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas.toDataURL("image/png").split(",", 2)[1];
}

const changedSlice = (s) => s.labels.some((v, i) => v !== s.saved[i]);

async function start(root) {
  const status = $("editor-status");
  const say = (text, error = false) => { status.textContent = text; status.classList.toggle("error", error); };
  const viewer = $("viewer"), slider = $("slice-slider"), windowSelect = $("window-select");
  const slices = new Map();  // slice index -> {labels, saved, hu, history, width, height}
  let view = null, current = null, keyState = null;

  const radio = (name) => document.querySelector(`input[name=${name}]:checked`).value;
  const radius = () => Number($("brush-size").value) / 2;
  const edited = () => [...slices.entries()].filter(([, s]) => changedSlice(s));
  const refresh = () => {
    const count = edited().length;
    $("undo").disabled = !(current && current.history.canUndo);
    $("redo").disabled = !(current && current.history.canRedo);
    $("save-labels").disabled = count === 0;
    say(count ? `Unsaved changes on ${count} slice(s). Save to recompute the figures.`
              : "Paint, erase or fill on any slice, then Save.");
  };
  const showWindow = () => {
    view.setGrey(windowed(current.hu, WINDOWS[windowSelect.value] || WINDOWS.abdomen));
  };

  // A slice's labels and HU: its edits if it has some, else loaded from the server once.
  const load = async (index) => {
    if (!slices.has(index)) {
      const [found, hu] = await Promise.all([
        loadLabels(slicePath(root.dataset.labelsUrl, index)), loadHu(slicePath(root.dataset.huUrl, index))]);
      if (!slices.has(index)) {
        slices.set(index, { labels: found.labels, saved: found.labels.slice(), hu, history: new History(),
                            width: found.width, height: found.height });
      }
    }
    return slices.get(index);
  };
  // Show slice `index`. Only the slice asked for last is shown: a slow load for one scrolled past
  // is kept, not shown.
  let wanted = null;
  const open = async (index) => {
    wanted = index;
    const s = await load(index);
    if (wanted !== index) return;
    if (!view) {
      view = new View($("editor-canvas"), s.width, s.height);
      view.resize();
      view.fit();
      new ResizeObserver(() => view.resize()).observe(view.canvas);
      keyState = bindPointer(view, {
        tool: () => radio("editor-tool"), radius, label: () => Number(radio("editor-label")),
        target: () => current, changed: refresh, click,
      });
    }
    current = s;
    showWindow();
    view.setLabels(s.labels);
    refresh();
    root.dataset.slice = String(index);  // which slice the canvas shows (tests wait for it)
  };
  const click = (p, tool) => {
    const x = Math.floor(p.x), y = Math.floor(p.y), s = current;
    if (x < 0 || y < 0 || x >= s.width || y >= s.height) return;
    s.history.push(s.labels);
    const out = tool === "fill" ? fillOutline(s.labels, s.width, s.height, x, y, Number(radio("editor-label")))
                                : removeLesion(s.labels, s.width, s.height, x, y);  // on this slice only
    if (out.error) { s.history.discard(); say(out.error, true); return; }
    view.setLabels(s.labels, out.box);
    refresh();
  };
  const replace = (next) => { if (next) { current.labels = next; view.setLabels(next); refresh(); } };
  // Copy the labels of the slice below (-1) or above (+1) onto this one, as a start to adjust.
  const copyFrom = async (offset) => {
    const index = Number(root.dataset.slice), from = index + offset;
    if (from < 0 || from > Number(slider.max)) { say("There is no slice there to copy from.", true); return; }
    const source = await load(from);
    if (Number(root.dataset.slice) !== index) return;  // moved on meanwhile
    current.history.push(current.labels);
    replace(source.labels.slice());
  };
  $("copy-below").addEventListener("click", () => copyFrom(-1));
  $("copy-above").addEventListener("click", () => copyFrom(1));

  $("edit-labels").addEventListener("click", async () => {
    $("editor-tools").hidden = false;
    $("editor-stage").hidden = false;
    $("slice-image").hidden = true;
    $("edit-labels").hidden = true;
    await open(Number(slider.value));
    root.dataset.ready = "true";
  });
  viewer.addEventListener("slicechange", (e) => { if (view) open(e.detail.index); });
  windowSelect.addEventListener("change", () => { if (view) showWindow(); });
  $("undo").addEventListener("click", () => replace(current.history.undo(current.labels)));
  $("redo").addEventListener("click", () => replace(current.history.redo(current.labels)));
  $("brush-size").addEventListener("input", (e) => { $("brush-size-value").textContent = e.target.value; });

  const save = async () => {
    const changes = edited();
    if (!changes.length) return;
    $("save-labels").disabled = true;
    say("Saving and recomputing…");
    const body = { slices: Object.fromEntries(changes.map(([k, s]) => [String(k), labelPng(s.labels, s.width, s.height)])) };
    try {
      const response = await fetch(root.dataset.saveUrl, {
        method: "PUT", credentials: "same-origin", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json",
                   "X-CSRFToken": root.querySelector("input[name=csrfmiddlewaretoken]").value },
      });
      const answer = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(answer.error || `Saving failed (${response.status}).`);
      for (const [, s] of changes) s.saved = s.labels.slice();
      say("Saved. Reloading the recomputed result…");
      window.location.reload();
    } catch (error) {
      say(error.message, true);
      $("save-labels").disabled = false;
    }
  };
  $("save-labels").addEventListener("click", save);

  const centre = () => { const r = view.canvas.getBoundingClientRect(); return [r.width / 2, r.height / 2]; };
  const zoom = (factor) => { if (view) view.zoomAt(factor, ...centre()); };
  const fit = () => { if (view) view.fit(); };
  const brush = (step) => {
    const size = $("brush-size");
    size.value = Number(size.value) + step;
    size.dispatchEvent(new Event("input"));
  };
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("zoom-fit").addEventListener("click", fit);

  // Shortcuts as in the slice editor, while the editor is open and not typing in a field.
  const radios = { b: "tool-brush", e: "tool-eraser", f: "tool-fill", r: "tool-remove", h: "tool-pan",
                   l: "label-liver", t: "label-tumor" };
  const keys = { ...Object.fromEntries(Object.entries(radios).map(([k, id]) => [k, () => { $(id).checked = true; }])),
                 "[": () => brush(-2), "]": () => brush(2), "+": () => zoom(1.25), "=": () => zoom(1.25),
                 "-": () => zoom(0.8), "0": fit };
  document.addEventListener("keydown", (e) => {
    if (!view || e.target.closest("input[type=text], input[type=number], textarea, select")) return;
    const key = e.key.toLowerCase();
    if (e.ctrlKey || e.metaKey) {
      if (key === "z" && !e.shiftKey) replace(current.history.undo(current.labels));
      else if (key === "y" || (key === "z" && e.shiftKey)) replace(current.history.redo(current.labels));
      else if (key === "s") save();
      else return;
      e.preventDefault();
      return;
    }
    if (e.key === " " && e.target === document.body) { keyState.spaceDown = true; e.preventDefault(); return; }
    if (keys[key] && !e.altKey) { keys[key](); view.draw(); }
  });
  document.addEventListener("keyup", (e) => { if (e.key === " " && keyState) keyState.spaceDown = false; });
  window.addEventListener("beforeunload", (e) => {
    if (edited().length && !status.textContent.startsWith("Saved")) e.preventDefault();
  });

  // Changes made on the server from the saved labels (a new version), then the page reloads.
  const serverChange = async (button, body, question) => {
    if (edited().length && !window.confirm(question)) return;
    button.disabled = true;
    const response = await fetch(button.dataset.url, {
      method: "POST", credentials: "same-origin", body: body ? JSON.stringify(body) : undefined,
      headers: { Accept: "application/json", "Content-Type": "application/json",
                 "X-CSRFToken": root.querySelector("input[name=csrfmiddlewaretoken]").value },
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) { button.disabled = false; say(answer.error || `Failed (${response.status}).`, true); return; }
    slices.clear();
    say("Saved. Reloading the recomputed result…");
    window.location.reload();
  };
  // Remove a whole 3-D lesion (every slice it spans), from the lesion table.
  document.querySelectorAll(".lesion-remove").forEach((button) => {
    button.addEventListener("click", () => serverChange(button, null,
      "Unsaved slice edits will be lost. Remove the lesion anyway?"));
  });
  // Outline two slices, save, then fill the ones between (slice numbers on the page start at 1).
  $("interpolate").addEventListener("click", () => serverChange($("interpolate"),
    { from: Number($("interpolate-from").value) - 1, to: Number($("interpolate-to").value) - 1 },
    "Interpolation works from the saved slices; unsaved edits will be lost. Go on?"));
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("series-editor");
  if (!root) return;
  start(root).catch((error) => {
    const status = document.getElementById("editor-status");
    status.textContent = `The editor could not start: ${error.message}`;
    status.classList.add("error");
  });
});
