// The series viewer's editor (issue 20): the slice editor's modules (static/js/editor/: view, tools,
// history, pointer input, the shared controls and the label-map encoding) on any slice of a series.
// This file only adds slice navigation: each slice keeps its own label map and undo history while
// you move through the series; Save sends only the slices that changed
// (PUT /series/<id>/slices/labels/) and the page reloads with every figure recomputed.  Removing a
// 3-D lesion and interpolating between two saved slices are done on the server.
import { History } from "../editor/history.js";
import { labelPngBase64, loadHu, loadLabels, send } from "../editor/api.js";
import { bindControls, boot } from "../editor/controls.js";
import { View, WINDOWS, windowed } from "../editor/view.js";

const $ = (id) => document.getElementById(id);
const slicePath = (url, index) => url.replace("/slices/0/", `/slices/${index}/`);
const changedSlice = (s) => s.labels.some((v, i) => v !== s.saved[i]);

async function start(root) {
  const viewer = $("viewer"), slider = $("slice-slider"), windowSelect = $("window-select");
  const slices = new Map();  // slice index -> {labels, saved, hu, history, width, height}
  let view = null, current = null;
  const edited = () => [...slices.entries()].filter(([, s]) => changedSlice(s));

  const controls = bindControls(root, {
    current: () => current, view: () => view, dirty: () => edited().length > 0,
    status: () => {
      const count = edited().length;
      return count ? `Unsaved changes on ${count} slice(s). Save to recompute the figures.`
                   : "Paint, erase or fill on any slice, then Save.";
    },
    save: async (token) => {
      const body = { slices: {} };
      for (const [k, s] of edited()) body.slices[String(k)] = await labelPngBase64(s.labels, s.width, s.height);
      return send(root.dataset.saveUrl, token, { body, json: true });
    },
  });
  const showWindow = () => view.setGrey(windowed(current.hu, WINDOWS[windowSelect.value] || WINDOWS.abdomen));

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
      controls.attach(view);
    }
    current = s;
    showWindow();
    view.setLabels(s.labels);
    controls.refresh();
    root.dataset.slice = String(index);  // which slice the canvas shows (tests wait for it)
  };
  // Copy the labels of the slice below (-1) or above (+1) onto this one, as a start to adjust.
  const copyFrom = async (offset) => {
    const index = Number(root.dataset.slice), from = index + offset;
    if (from < 0 || from > Number(slider.max)) { controls.say("There is no slice there to copy from.", true); return; }
    const source = await load(from);
    if (Number(root.dataset.slice) !== index) return;  // moved on meanwhile
    controls.record(source.labels.slice());
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

  // Changes made on the server from the saved labels (a new version), then the page reloads.
  const serverChange = async (button, body, question) => {
    if (edited().length && !window.confirm(question)) return;
    button.disabled = true;
    try {
      await send(button.dataset.url, controls.csrfToken(), { method: "POST", body, json: true });
    } catch (error) {
      button.disabled = false;
      controls.say(error.message, true);
      return;
    }
    slices.clear();
    controls.reload();
  };
  // Remove a whole 3-D lesion (every slice it spans), from the lesion table.
  document.querySelectorAll(".lesion-remove").forEach((button) => {
    button.addEventListener("click", () => serverChange(button, undefined,
      "Unsaved slice edits will be lost. Remove the lesion anyway?"));
  });
  // Outline two slices, save, then fill the ones between (slice numbers on the page start at 1).
  $("interpolate").addEventListener("click", () => serverChange($("interpolate"),
    { from: Number($("interpolate-from").value) - 1, to: Number($("interpolate-to").value) - 1 },
    "Interpolation works from the saved slices; unsaved edits will be lost. Go on?"));
}

boot("series-editor", start);
