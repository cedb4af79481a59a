// Pointer input on an editor canvas, shared by the slice editor and the series editor: one pointer
// paints (or pans, with the Pan tool, Space or the middle button), two pointers pinch-zoom and pan
// (touch), the wheel zooms.  What a stroke or a click does is the caller's (`handlers`).
import { paintLine } from "./tools.js";

// handlers: tool() -> "brush" | "eraser" | "fill" | "remove" | "pan"; radius() in image px;
// target() -> {labels, width, height, history} being edited; label() -> 1 | 2;
// changed() after a stroke or click that changed the labels; click(p, tool) for fill / remove.
// Returns {spaceDown}: the caller's keyboard handler sets it while Space is held.
export function bindPointer(view, handlers) {
  const state = { spaceDown: false };
  const pointers = new Map();
  let stroke = null, panning = null, pinch = null;
  const canvas = view.canvas;

  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, e);
    if (pointers.size === 2) {  // a second finger: stop painting, start pinching
      if (stroke && !stroke.changed) stroke.target.history.discard();
      stroke = null;
      const [a, b] = [...pointers.values()];
      pinch = { distance: Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY), x: (a.clientX + b.clientX) / 2, y: (a.clientY + b.clientY) / 2 };
      return;
    }
    const tool = handlers.tool();
    if (tool === "pan" || state.spaceDown || e.button === 1) {
      panning = { x: e.clientX, y: e.clientY };
      return;
    }
    const p = view.toImage(e.clientX, e.clientY);
    if (tool === "fill" || tool === "remove") { handlers.click(p, tool); return; }
    const target = handlers.target();
    target.history.push(target.labels);
    stroke = { target, last: p, changed: false, erase: tool === "eraser", label: handlers.label() };
    paintTo(p);
  });

  // Extend the stroke to p (image px); the overlay is recoloured inside the changed box only.
  const paintTo = (p) => {
    const { labels, width, height } = stroke.target;
    const box = paintLine(labels, width, height, stroke.last.x, stroke.last.y, p.x, p.y, handlers.radius(),
                          stroke.label, stroke.erase);
    stroke.last = p;
    if (box) { stroke.changed = true; view.setLabels(labels, box); }
  };

  canvas.addEventListener("pointermove", (e) => {
    const p = view.toImage(e.clientX, e.clientY);
    view.cursor = ["brush", "eraser"].includes(handlers.tool()) ? { x: p.x, y: p.y, radius: handlers.radius() } : null;
    if (pointers.has(e.pointerId)) pointers.set(e.pointerId, e);
    if (pinch && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY);
      const x = (a.clientX + b.clientX) / 2, y = (a.clientY + b.clientY) / 2;
      view.panBy(x - pinch.x, y - pinch.y);
      const { sx, sy } = view.local(x, y);
      view.zoomAt(distance / Math.max(1, pinch.distance), sx, sy);
      pinch = { distance, x, y };
    } else if (panning) {
      view.panBy(e.clientX - panning.x, e.clientY - panning.y);
      panning = { x: e.clientX, y: e.clientY };
    } else if (stroke) {
      paintTo(p);
    }
    view.draw();
  });

  const end = (e) => {
    pointers.delete(e.pointerId);
    if (pointers.size < 2) pinch = null;
    if (stroke) {
      if (!stroke.changed) stroke.target.history.discard();
      stroke = null;
      handlers.changed();
    }
    if (!pointers.size) panning = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => { view.cursor = null; view.draw(); });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    const { sx, sy } = view.local(e.clientX, e.clientY);
    view.zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, sx, sy);
  }, { passive: false });
  return state;
}
