// Editing tools: small functions over a label map (Uint8Array, row-major, the registry's values:
// background, liver, tumour). Each returns the changed bounding box [x0, y0, x1, y1] or null when
// nothing changed.
import { BACKGROUND, LIVER, TUMOR } from "./registry.js";

// What a brush or eraser of `label` does to one pixel value. Painting tumour makes tumour;
// painting liver adds liver around (not over) tumour; erasing liver clears everything there;
// erasing tumour leaves liver (a lesion sits in the liver).
function paintRule(label, erase) {
  if (!erase) return label === TUMOR ? (v) => TUMOR : (v) => (v === BACKGROUND ? LIVER : v);
  return label === TUMOR ? (v) => (v === TUMOR ? LIVER : v) : (v) => BACKGROUND;
}

export function paintDisc(labels, width, height, cx, cy, radius, label, erase) {
  const rule = paintRule(label, erase);
  const r = Math.max(0.5, radius);
  const x0 = Math.max(0, Math.floor(cx - r)), x1 = Math.min(width - 1, Math.ceil(cx + r));
  const y0 = Math.max(0, Math.floor(cy - r)), y1 = Math.min(height - 1, Math.ceil(cy + r));
  let changed = false;
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const dx = x - cx, dy = y - cy;
      if (dx * dx + dy * dy > r * r) continue;
      const i = y * width + x, next = rule(labels[i]);
      if (next !== labels[i]) { labels[i] = next; changed = true; }
    }
  }
  return changed ? [x0, y0, x1, y1] : null;
}

// A stroke from (ax, ay) to (bx, by): discs every half radius so the line has no gaps.
export function paintLine(labels, width, height, ax, ay, bx, by, radius, label, erase) {
  const steps = Math.max(1, Math.ceil(Math.hypot(bx - ax, by - ay) / Math.max(0.5, radius / 2)));
  let box = null;
  for (let s = 0; s <= steps; s++) {
    const t = s / steps;
    box = union(box, paintDisc(labels, width, height, ax + (bx - ax) * t, ay + (by - ay) * t, radius, label, erase));
  }
  return box;
}

function union(a, b) {
  if (!a) return b;
  if (!b) return a;
  return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[2], b[2]), Math.max(a[3], b[3])];
}

// Flood from (x, y) over pixels where `inside(value)`; `connectivity` 4 or 8. Returns the pixel
// indices and whether the region touches the image border.
function flood(labels, width, height, x, y, inside, connectivity) {
  const start = y * width + x;
  if (!inside(labels[start])) return { pixels: [], border: false };
  const seen = new Uint8Array(labels.length);
  const stack = [start], pixels = [];
  seen[start] = 1;
  let border = false;
  const steps = connectivity === 8
    ? [[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]]
    : [[1, 0], [-1, 0], [0, 1], [0, -1]];
  while (stack.length) {
    const i = stack.pop();
    pixels.push(i);
    const px = i % width, py = (i - px) / width;
    if (px === 0 || py === 0 || px === width - 1 || py === height - 1) border = true;
    for (const [dx, dy] of steps) {
      const nx = px + dx, ny = py + dy;
      if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
      const j = ny * width + nx;
      if (!seen[j] && inside(labels[j])) { seen[j] = 1; stack.push(j); }
    }
  }
  return { pixels, border };
}

function boxOf(pixels, width) {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (const i of pixels) {
    const x = i % width, y = (i - x) / width;
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  return pixels.length ? [x0, y0, x1, y1] : null;
}

// Fill the inside of a closed outline of `label` drawn around (x, y). Returns {box} or
// {error} when the click is on the label already or the outline is open (the region reaches
// the image border).
export function fillOutline(labels, width, height, x, y, label) {
  const inside = label === TUMOR ? (v) => v !== TUMOR : (v) => v === BACKGROUND;
  const { pixels, border } = flood(labels, width, height, x, y, inside, 4);
  if (!pixels.length) return { error: "Click inside a closed outline, not on it." };
  if (border) return { error: "That outline is not closed: the fill would reach the image edge." };
  for (const i of pixels) labels[i] = label;
  return { box: boxOf(pixels, width) };
}

// Remove the lesion (8-connected tumour piece) under (x, y): its pixels become liver.
export function removeLesion(labels, width, height, x, y) {
  const { pixels } = flood(labels, width, height, x, y, (v) => v === TUMOR, 8);
  if (!pixels.length) return { error: "Click on a lesion (red) to remove it." };
  for (const i of pixels) labels[i] = LIVER;
  return { box: boxOf(pixels, width) };
}

export function countLesions(labels, width, height) {
  const seen = new Uint8Array(labels.length);
  let count = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== TUMOR || seen[i]) continue;
    count++;
    const x = i % width, y = (i - x) / width;
    for (const j of flood(labels, width, height, x, y, (v) => v === TUMOR, 8).pixels) seen[j] = 1;
  }
  return count;
}
