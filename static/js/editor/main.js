// The outline editor on the result page: wires the view, the tools, the history and the save.
import { History } from "./history.js";
import { imagePixels, loadHu, loadLabels, saveMasks } from "./api.js";
import { bindPointer } from "./pointer.js";
import { countLesions, fillOutline, removeLesion } from "./tools.js";
import { View, WINDOWS, windowed } from "./view.js";

const $ = (id) => document.getElementById(id);

async function start(root) {
  const status = $("editor-status");
  const say = (text, error = false) => {
    status.textContent = text;
    status.classList.toggle("error", error);
  };
  const [current, model, original, hu] = await Promise.all([
    loadLabels(root.dataset.currentUrl), loadLabels(root.dataset.modelUrl),
    imagePixels(root.dataset.originalUrl), loadHu(root.dataset.huUrl),
  ]);
  const { width, height } = current;
  let labels = current.labels;
  const saved = labels.slice();
  const history = new History();
  const view = new View($("editor-canvas"), width, height);
  const uploaded = new Uint8ClampedArray(width * height);
  for (let i = 0; i < uploaded.length; i++) uploaded[i] = original.data[4 * i];

  // Window presets need HU; an 8-bit upload has only its own grey values.
  const preset = $("window-preset");
  if (!hu) {
    for (const option of preset.options) option.disabled = option.value !== "uploaded";
    $("window-note").hidden = false;
    $("window-note").textContent = "This upload is an 8-bit picture without Hounsfield units: only the window it was saved with is available.";
  }
  const showWindow = () => view.setGrey(preset.value === "uploaded" || !hu ? uploaded : windowed(hu, WINDOWS[preset.value]));
  preset.addEventListener("change", showWindow);
  showWindow();
  view.setLabels(labels);
  view.resize();
  view.fit();
  new ResizeObserver(() => { view.resize(); }).observe(view.canvas);

  const radio = (name) => document.querySelector(`input[name=${name}]:checked`).value;
  const setRadio = (id) => { $(id).checked = true; };
  const size = $("brush-size");
  const radius = () => Number(size.value) / 2;
  size.addEventListener("input", () => { $("brush-size-value").textContent = size.value; });
  $("overlay-opacity").addEventListener("input", (e) => { view.opacity = Number(e.target.value) / 100; view.draw(); });

  const dirty = () => labels.some((v, i) => v !== saved[i]);
  const refresh = () => {
    $("undo").disabled = !history.canUndo;
    $("redo").disabled = !history.canRedo;
    $("save-masks").disabled = !dirty();
    const lesions = countLesions(labels, width, height);
    say(dirty() ? `Unsaved changes · ${lesions} lesion(s) outlined. Save to recompute the figures.`
                : `${lesions} lesion(s) outlined. Paint, erase or fill, then Save.`);
  };
  const replace = (next) => { if (next) { labels = next; view.setLabels(labels); refresh(); } };

  // Pointer input (shared with the series editor): paint, pan, pinch, wheel zoom.
  const canvas = view.canvas;
  const clickTool = (p) => {
    const x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    history.push(labels);
    const label = Number(radio("editor-label"));
    const out = radio("editor-tool") === "fill" ? fillOutline(labels, width, height, x, y, label)
                                                 : removeLesion(labels, width, height, x, y);
    if (out.error) { history.discard(); say(out.error, true); return; }
    view.setLabels(labels, out.box);
    refresh();
  };
  const keyState = bindPointer(view, {
    tool: () => radio("editor-tool"), radius, label: () => Number(radio("editor-label")),
    target: () => ({ labels, width, height, history }), changed: refresh, click: clickTool,
  });

  const centre = () => { const r = canvas.getBoundingClientRect(); return [r.width / 2, r.height / 2]; };
  $("zoom-in").addEventListener("click", () => view.zoomAt(1.25, ...centre()));
  $("zoom-out").addEventListener("click", () => view.zoomAt(0.8, ...centre()));
  $("zoom-fit").addEventListener("click", () => view.fit());
  $("undo").addEventListener("click", () => replace(history.undo(labels)));
  $("redo").addEventListener("click", () => replace(history.redo(labels)));
  $("reset-model").addEventListener("click", () => { history.push(labels); replace(model.labels.slice()); });

  const save = async () => {
    if (!dirty()) return;
    $("save-masks").disabled = true;
    say("Saving and recomputing…");
    try {
      const token = root.querySelector("input[name=csrfmiddlewaretoken]").value;
      await saveMasks(root.dataset.saveUrl, token, labels, width, height);
      say("Saved. Reloading the recomputed result…");
      window.location.reload();
    } catch (error) {
      say(error.message, true);
      $("save-masks").disabled = false;
    }
  };
  $("save-masks").addEventListener("click", save);

  // Keyboard shortcuts (not while typing in a form field).
  const keys = {
    b: () => setRadio("tool-brush"), e: () => setRadio("tool-eraser"), f: () => setRadio("tool-fill"),
    r: () => setRadio("tool-remove"), h: () => setRadio("tool-pan"),
    l: () => setRadio("label-liver"), t: () => setRadio("label-tumor"),
    "[": () => { size.value = Number(size.value) - 2; size.dispatchEvent(new Event("input")); },
    "]": () => { size.value = Number(size.value) + 2; size.dispatchEvent(new Event("input")); },
    "+": () => view.zoomAt(1.25, ...centre()), "=": () => view.zoomAt(1.25, ...centre()),
    "-": () => view.zoomAt(0.8, ...centre()), "0": () => view.fit(),
  };
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input[type=text], input[type=number], textarea, select")) return;
    const key = e.key.toLowerCase();
    if (e.ctrlKey || e.metaKey) {
      if (key === "z" && !e.shiftKey) replace(history.undo(labels));
      else if (key === "y" || (key === "z" && e.shiftKey)) replace(history.redo(labels));
      else if (key === "s") save();
      else return;
      e.preventDefault();
      return;
    }
    if (e.key === " " && e.target === document.body) { keyState.spaceDown = true; e.preventDefault(); return; }
    if (keys[key] && !e.altKey) { keys[key](); view.draw(); }
  });
  document.addEventListener("keyup", (e) => { if (e.key === " ") keyState.spaceDown = false; });
  window.addEventListener("beforeunload", (e) => {
    if (dirty() && !status.textContent.startsWith("Saved")) e.preventDefault();
  });
  root.dataset.ready = "true";
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("editor");
  if (!root) return;
  start(root).catch((error) => {
    const status = document.getElementById("editor-status");
    status.textContent = `The editor could not start: ${error.message}`;
    status.classList.add("error");
  });
});
