// Talking to the server: the slice, the label maps and the saves.  A label map travels as a PNG
// whose grey value is the label value (TumorApp/analysis/labels.py: encode_png / decode_png), read
// and written exactly: no thresholds, and a value that is no label is an error.
import { VALUES } from "./registry.js";
import { layer } from "./view.js";

async function fetchOk(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`Could not load ${url} (${response.status}).`);
  return response;
}

// The pixels of a PNG as RGBA ImageData at its own size, without colour management (exact values).
export async function imagePixels(url) {
  const bitmap = await createImageBitmap(await (await fetchOk(url)).blob(),
                                         { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  const canvas = layer(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

// A served label map -> {labels: Uint8Array of label values, width, height}.
export async function loadLabels(url) {
  const data = await imagePixels(url);
  const labels = new Uint8Array(data.width * data.height);
  for (let i = 0; i < labels.length; i++) {
    const v = data.data[4 * i];
    if (!VALUES.has(v)) throw new Error(`The label map holds ${v}, which is not a label value.`);
    labels[i] = v;
  }
  return { labels, width: data.width, height: data.height };
}

// The slice in HU (Int16Array), or null when the upload had none (404).
export async function loadHu(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`Could not load the slice's HU values (${response.status}).`);
  return new Int16Array(await response.arrayBuffer());
}

// A label map as the PNG the server decodes: each pixel opaque grey, its value the label.
export function labelPng(labels, width, height) {
  const canvas = layer(width, height);
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < labels.length; i++) {
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = labels[i];
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

// The same PNG as base64 (no data: prefix), for a JSON body.
export async function labelPngBase64(labels, width, height) {
  const bytes = new Uint8Array(await (await labelPng(labels, width, height)).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// Send a body with the CSRF token; the JSON answer, or an Error with the server's message.
export async function send(url, csrfToken, { method = "PUT", body, json = false } = {}) {
  const headers = { "X-CSRFToken": csrfToken, Accept: "application/json" };
  if (json) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, credentials: "same-origin", headers, body: json && body !== undefined ? JSON.stringify(body) : body,
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `Saving failed (${response.status}).`);
  return answer;
}

// The slice editor's save: one label map (PUT /api/analyses/<id>/masks/, field `labels`).
export async function saveLabelMap(url, csrfToken, labels, width, height) {
  const form = new FormData();
  form.append("labels", await labelPng(labels, width, height), "labels.png");
  return send(url, csrfToken, { body: form });
}
