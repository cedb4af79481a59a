// The canvas: the slice at full resolution with the label overlay, zoom/pan and the brush cursor.

// Label colours and windows come from the server's one registry (registry.js), so the editor draws
// what the pictures draw.
import { BACKGROUND, REGISTRY, WINDOWS } from "./registry.js";

export { WINDOWS };
const COLOURS = Object.fromEntries(Object.entries(REGISTRY.labels)
  .filter(([value]) => Number(value) !== BACKGROUND).map(([value, label]) => [value, label.rgb]));

// HU -> 0..255 grey through a window.
export function windowed(hu, { width, level }) {
  const grey = new Uint8ClampedArray(hu.length);
  const low = level - width / 2;
  for (let i = 0; i < hu.length; i++) grey[i] = ((hu[i] - low) / width) * 255;
  return grey;
}

// A canvas of the image's size, off screen.
export function layer(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  return canvas;
}

export class View {
  constructor(canvas, width, height) {
    this.canvas = canvas;
    this.width = width;
    this.height = height;
    this.base = layer(width, height);
    this.overlay = layer(width, height);
    this.overlayData = this.overlay.getContext("2d").createImageData(width, height);
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.opacity = 0.45;
    this.cursor = null;  // {x, y, radius} in image pixels
    this.pending = false;
  }

  setGrey(grey) {
    const ctx = this.base.getContext("2d");
    const image = ctx.createImageData(this.width, this.height);
    for (let i = 0; i < grey.length; i++) {
      image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = grey[i];
      image.data[4 * i + 3] = 255;
    }
    ctx.putImageData(image, 0, 0);
    this.draw();
  }

  // Recolour the overlay inside `box` ([x0, y0, x1, y1], inclusive) or everywhere.
  setLabels(labels, box = null) {
    const [x0, y0, x1, y1] = box || [0, 0, this.width - 1, this.height - 1];
    const data = this.overlayData.data;
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        const i = y * this.width + x, colour = COLOURS[labels[i]];
        if (colour) {
          data[4 * i] = colour[0]; data[4 * i + 1] = colour[1]; data[4 * i + 2] = colour[2]; data[4 * i + 3] = 255;
        } else {
          data[4 * i + 3] = 0;
        }
      }
    }
    this.overlay.getContext("2d").putImageData(this.overlayData, 0, 0, x0, y0, x1 - x0 + 1, y1 - y0 + 1);
    this.draw();
  }

  // Match the canvas's backing store to its CSS size (sharp on high-DPI screens).
  resize() {
    const ratio = window.devicePixelRatio || 1;
    const rect = this.canvas.getBoundingClientRect();
    this.canvas.width = Math.max(1, Math.round(rect.width * ratio));
    this.canvas.height = Math.max(1, Math.round(rect.height * ratio));
    this.draw();
  }

  fit() {
    const rect = this.canvas.getBoundingClientRect();
    this.zoom = Math.min(rect.width / this.width, rect.height / this.height);
    this.panX = (rect.width - this.width * this.zoom) / 2;
    this.panY = (rect.height - this.height * this.zoom) / 2;
    this.draw();
  }

  // Zoom by `factor` keeping the point under (sx, sy) (CSS px in the canvas) still.
  zoomAt(factor, sx, sy) {
    const zoom = Math.min(40, Math.max(0.1, this.zoom * factor));
    this.panX = sx - (sx - this.panX) * (zoom / this.zoom);
    this.panY = sy - (sy - this.panY) * (zoom / this.zoom);
    this.zoom = zoom;
    this.draw();
  }

  panBy(dx, dy) {
    this.panX += dx;
    this.panY += dy;
    this.draw();
  }

  // Client coordinates -> canvas CSS px and image pixels (floats).
  local(clientX, clientY) {
    const rect = this.canvas.getBoundingClientRect();
    return { sx: clientX - rect.left, sy: clientY - rect.top };
  }

  toImage(clientX, clientY) {
    const { sx, sy } = this.local(clientX, clientY);
    return { x: (sx - this.panX) / this.zoom, y: (sy - this.panY) / this.zoom };
  }

  draw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.paint();
    });
  }

  paint() {
    const ctx = this.canvas.getContext("2d");
    const ratio = this.canvas.width / Math.max(1, this.canvas.getBoundingClientRect().width);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.setTransform(this.zoom * ratio, 0, 0, this.zoom * ratio, this.panX * ratio, this.panY * ratio);
    ctx.imageSmoothingEnabled = false;  // full resolution: every pixel shown as a square
    ctx.drawImage(this.base, 0, 0);
    ctx.globalAlpha = this.opacity;
    ctx.drawImage(this.overlay, 0, 0);
    ctx.globalAlpha = 1;
    if (this.cursor) {
      ctx.beginPath();
      ctx.arc(this.cursor.x, this.cursor.y, Math.max(0.5, this.cursor.radius), 0, 2 * Math.PI);
      ctx.lineWidth = 1.5 / this.zoom;
      ctx.strokeStyle = "#ffd400";
      ctx.stroke();
    }
  }
}
