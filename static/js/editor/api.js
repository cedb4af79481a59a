// Talking to the server: the slice, the outlines, and the save (PUT /api/analyses/<id>/masks/).

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`Could not load ${url}`));
    img.src = url;
  });
}

// The pixels of a PNG as RGBA ImageData at its own size.
export async function imagePixels(url) {
  const img = await loadImage(url);
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

// A label PNG (0 background, 128 liver, 255 tumour) -> Uint8Array of 0/1/2.
export async function loadLabels(url) {
  const data = await imagePixels(url);
  const labels = new Uint8Array(data.width * data.height);
  for (let i = 0; i < labels.length; i++) {
    const v = data.data[4 * i];
    labels[i] = v >= 192 ? 2 : v >= 64 ? 1 : 0;
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

// One mask as an 8-bit PNG (white inside, black outside), through a canvas.
function maskBlob(labels, width, height, inside) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(width, height);
  for (let i = 0; i < labels.length; i++) {
    const v = inside(labels[i]) ? 255 : 0;
    image.data[4 * i] = image.data[4 * i + 1] = image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

export async function saveMasks(url, csrfToken, labels, width, height) {
  const form = new FormData();
  form.append("liver", await maskBlob(labels, width, height, (v) => v >= 1), "liver.png");
  form.append("tumor", await maskBlob(labels, width, height, (v) => v === 2), "tumor.png");
  const response = await fetch(url, {
    method: "PUT", body: form, credentials: "same-origin",
    headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
  });
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON: keep the status */ }
  if (!response.ok) throw new Error(body.error || `Saving failed (${response.status}).`);
  return body;
}
