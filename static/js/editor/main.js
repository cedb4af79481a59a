// The outline editor on the result page: one slice, its window presets and "reset to the network";
// the tool bar, keys and save are the shared controls.js.
import { History } from "./history.js";
import { imagePixels, loadHu, loadLabels, saveLabelMap } from "./api.js";
import { bindControls, boot } from "./controls.js";
import { countLesions } from "./tools.js";
import { View, WINDOWS, windowed } from "./view.js";

const $ = (id) => document.getElementById(id);

async function start(root) {
  const [current, model, original, hu] = await Promise.all([
    loadLabels(root.dataset.currentUrl), loadLabels(root.dataset.modelUrl),
    imagePixels(root.dataset.originalUrl), loadHu(root.dataset.huUrl),
  ]);
  const { width, height } = current;
  const slice = { labels: current.labels, saved: current.labels.slice(), width, height, history: new History() };
  const view = new View($("editor-canvas"), width, height);
  const dirty = () => slice.labels.some((v, i) => v !== slice.saved[i]);
  const controls = bindControls(root, {
    current: () => slice, view: () => view, dirty,
    status: () => {
      const lesions = countLesions(slice.labels, width, height);
      return dirty() ? `Unsaved changes · ${lesions} lesion(s) outlined. Save to recompute the figures.`
                     : `${lesions} lesion(s) outlined. Paint, erase or fill, then Save.`;
    },
    save: (token) => saveLabelMap(root.dataset.saveUrl, token, slice.labels, width, height),
  });

  // Window presets need HU; an 8-bit upload has only its own grey values.
  const uploaded = new Uint8ClampedArray(width * height);
  for (let i = 0; i < uploaded.length; i++) uploaded[i] = original.data[4 * i];
  const preset = $("window-preset");
  if (!hu) {
    for (const option of preset.options) option.disabled = option.value !== "uploaded";
    $("window-note").hidden = false;
    $("window-note").textContent = "This upload is an 8-bit picture without Hounsfield units: only the window it was saved with is available.";
  }
  const showWindow = () => view.setGrey(preset.value === "uploaded" || !hu ? uploaded : windowed(hu, WINDOWS[preset.value]));
  preset.addEventListener("change", showWindow);
  showWindow();
  view.setLabels(slice.labels);
  view.resize();
  view.fit();
  new ResizeObserver(() => { view.resize(); }).observe(view.canvas);
  controls.attach(view);
  $("reset-model").addEventListener("click", () => controls.record(model.labels.slice()));
  root.dataset.ready = "true";
  controls.refresh();
}

boot("editor", start);
