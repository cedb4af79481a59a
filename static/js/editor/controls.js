// The wiring both editors share (the slice editor, main.js, and the series editor,
// ../series/editor.js): the tool bar (templates/editor/_toolbar.html), the fill and remove clicks,
// undo/redo, zoom, the keyboard shortcuts, the save and the unsaved-changes guard.  The page says
// which label map is being edited and how to save it (`edit`).
import { bindPointer } from "./pointer.js";
import { fillOutline, removeLesion } from "./tools.js";

const $ = (id) => document.getElementById(id);

// edit: current() -> {labels, width, height, history} shown now (null before the first);
// view() -> the View (null before); dirty() -> unsaved changes anywhere; status() -> the status
// line's text for the current state; save(csrfToken) -> a promise, the page's save (it reloads after).
export function bindControls(root, edit) {
  const statusLine = $("editor-status"), saveButton = $("save-labels"), size = $("brush-size");
  const csrfToken = () => root.querySelector("input[name=csrfmiddlewaretoken]").value;
  let reloading = false;
  const say = (text, error = false) => { statusLine.textContent = text; statusLine.classList.toggle("error", error); };
  const radio = (name) => document.querySelector(`input[name=${name}]:checked`).value;
  const radius = () => Number(size.value) / 2;

  const refresh = () => {
    const s = edit.current();
    $("undo").disabled = !(s && s.history.canUndo);
    $("redo").disabled = !(s && s.history.canRedo);
    saveButton.disabled = !edit.dirty();
    say(edit.status());
  };
  // Put `next` in place of the current label map (undo, redo, reset, copy), if there is one.
  const replace = (next) => {
    if (!next) return;
    edit.current().labels = next;
    edit.view().setLabels(next);
    refresh();
  };
  const record = (next) => { edit.current().history.push(edit.current().labels); replace(next); };

  const click = (p, tool) => {  // fill or remove, at one image pixel
    const s = edit.current(), x = Math.floor(p.x), y = Math.floor(p.y);
    if (x < 0 || y < 0 || x >= s.width || y >= s.height) return;
    s.history.push(s.labels);
    const out = tool === "fill" ? fillOutline(s.labels, s.width, s.height, x, y, Number(radio("editor-label")))
                                : removeLesion(s.labels, s.width, s.height, x, y);
    if (out.error) { s.history.discard(); say(out.error, true); return; }
    edit.view().setLabels(s.labels, out.box);
    refresh();
  };
  let keyState = null;
  // Pointer input on the view, once it exists.
  const attach = (view) => {
    keyState = bindPointer(view, {
      tool: () => radio("editor-tool"), radius, label: () => Number(radio("editor-label")),
      target: edit.current, changed: refresh, click,
    });
  };

  const centre = () => { const r = edit.view().canvas.getBoundingClientRect(); return [r.width / 2, r.height / 2]; };
  const zoom = (factor) => { if (edit.view()) edit.view().zoomAt(factor, ...centre()); };
  const fit = () => { if (edit.view()) edit.view().fit(); };
  const brush = (step) => { size.value = Number(size.value) + step; size.dispatchEvent(new Event("input")); };
  const undo = () => { if (edit.current()) replace(edit.current().history.undo(edit.current().labels)); };
  const redo = () => { if (edit.current()) replace(edit.current().history.redo(edit.current().labels)); };
  const reload = () => { reloading = true; say("Saved. Reloading the recomputed result…"); window.location.reload(); };
  const save = async () => {
    if (!edit.dirty()) return;
    saveButton.disabled = true;
    say("Saving and recomputing…");
    try {
      await edit.save(csrfToken());
      reload();
    } catch (error) {
      say(error.message, true);
      saveButton.disabled = false;
    }
  };

  size.addEventListener("input", () => { $("brush-size-value").textContent = size.value; });
  $("overlay-opacity").addEventListener("input", (e) => {
    if (!edit.view()) return;
    edit.view().opacity = Number(e.target.value) / 100;
    edit.view().draw();
  });
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(0.8));
  $("zoom-fit").addEventListener("click", fit);
  $("undo").addEventListener("click", undo);
  $("redo").addEventListener("click", redo);
  saveButton.addEventListener("click", save);

  // Keyboard shortcuts, while a label map is open and not while typing in a form field.
  const radios = { b: "tool-brush", e: "tool-eraser", f: "tool-fill", r: "tool-remove", h: "tool-pan",
                   l: "label-liver", t: "label-tumor" };
  const keys = { ...Object.fromEntries(Object.entries(radios).map(([k, id]) => [k, () => { $(id).checked = true; }])),
                 "[": () => brush(-2), "]": () => brush(2), "+": () => zoom(1.25), "=": () => zoom(1.25),
                 "-": () => zoom(0.8), "0": fit };
  document.addEventListener("keydown", (e) => {
    if (!edit.view() || e.target.closest("input[type=text], input[type=number], textarea, select")) return;
    const key = e.key.toLowerCase();
    if (e.ctrlKey || e.metaKey) {
      if (key === "z" && !e.shiftKey) undo();
      else if (key === "y" || (key === "z" && e.shiftKey)) redo();
      else if (key === "s") save();
      else return;
      e.preventDefault();
      return;
    }
    if (e.key === " " && e.target === document.body) { keyState.spaceDown = true; e.preventDefault(); return; }
    if (keys[key] && !e.altKey) { keys[key](); edit.view().draw(); }
  });
  document.addEventListener("keyup", (e) => { if (e.key === " " && keyState) keyState.spaceDown = false; });
  window.addEventListener("beforeunload", (e) => { if (edit.dirty() && !reloading) e.preventDefault(); });

  return { attach, refresh, replace, record, say, reload, csrfToken };
}

// Start an editor on the element `rootId` once the page is parsed; a failure is said in its status line.
export function boot(rootId, start) {
  document.addEventListener("DOMContentLoaded", () => {
    const root = document.getElementById(rootId);
    if (!root) return;
    start(root).catch((error) => {
      const status = document.getElementById("editor-status");
      status.textContent = `The editor could not start: ${error.message}`;
      status.classList.add("error");
    });
  });
}
