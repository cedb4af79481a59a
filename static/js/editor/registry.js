// The server's one registry of label values, colours and windows (TumorApp/analysis/labels.py),
// written into the page as JSON (#label-registry): no label value or colour is declared in JS.
export const REGISTRY = JSON.parse(document.getElementById("label-registry").textContent);
export const WINDOWS = REGISTRY.windows;

export const BACKGROUND = REGISTRY.value_of.background;
export const LIVER = REGISTRY.value_of.liver;
export const TUMOR = REGISTRY.value_of.tumour;
export const VALUES = new Set(Object.keys(REGISTRY.labels).map(Number));
