"""Synthetic liver lesions painted into HU slices, so the network sees more tumours than three patients have.

Published work (Hu et al., "Label-free liver tumor segmentation", CVPR 2023) showed that simple
synthetic tumours in healthy liver can stand in for many real labels.  Here a lesion is a
blob (an ellipse whose edge is bent by smooth noise) placed inside the liver, with a soft
edge, a grainy texture and a density offset from the surrounding liver: mostly hypodense, as
most liver metastases and HCC are in the portal-venous phase, sometimes hyperdense.  The
lesion's label is its pixels inside the liver; it is painted in HU before any windowing, so
every window the augmentation draws shows it consistently.

Only HU slices get lesions: the seed slices' intensities are mangled (liver clipped to white),
so no density offset there would look like a real tumour.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class LesionSpec:
    """Ranges the lesions are drawn from; sizes in millimetres, densities in HU."""

    radius_mm: tuple[float, float] = (3.0, 30.0)
    hypo_offset_hu: tuple[float, float] = (15.0, 70.0)   # lesion darker than liver by this much
    hyper_offset_hu: tuple[float, float] = (15.0, 40.0)  # ... or brighter, for `hyper_share` of lesions
    hyper_share: float = 0.1
    texture_hu: tuple[float, float] = (3.0, 12.0)        # std of the lesion's grain
    max_lesions: int = 3
    min_liver_px: int = 300                             # smaller liver sections get none


SPEC = LesionSpec()


def _blob(shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float],
          angle: float, rng: np.random.Generator) -> np.ndarray:
    """Soft (0..1) ellipse with a noisy edge: 1 inside, falling to 0 over about one pixel."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - centre[0], yy - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * dx + s * dy) / radii[0], (-s * dx + c * dy) / radii[1]
    dist = np.sqrt(u * u + v * v)
    bend = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), max(radii) / 2 + 1)
    bend *= 0.25 / (bend.std() + 1e-6)
    edge = max(1.0, 0.15 * min(radii))
    return np.clip((1.0 + bend - dist) * min(radii) / edge + 0.5, 0.0, 1.0)


def insert_lesions(hu: np.ndarray, labels: np.ndarray, spacing_mm: float, rng: np.random.Generator,
                   spec: LesionSpec = SPEC) -> tuple[np.ndarray, np.ndarray]:
    """Copies of (hu, labels) with 1..max_lesions synthetic lesions in the liver (label 2).

    Returns the inputs unchanged when the liver section is too small to hold a lesion.
    """
    liver = labels > 0
    inside = cv2.erode(liver.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if inside.sum() < spec.min_liver_px:
        return hu, labels
    healthy = labels == 1
    liver_hu = float(np.median(hu[healthy])) if healthy.sum() > 50 else float(np.median(hu[liver]))
    hu, labels = hu.astype(np.float32).copy(), labels.copy()
    ys, xs = np.nonzero(inside)
    fade = cv2.GaussianBlur(liver.astype(np.float32), (0, 0), 1.0)  # lesions fade out at the liver edge
    px = spacing_mm if np.isfinite(spacing_mm) and spacing_mm > 0 else 1.0
    for _ in range(int(rng.integers(1, spec.max_lesions + 1))):
        k = int(rng.integers(len(ys)))
        r = rng.uniform(*spec.radius_mm) / px
        radii = (max(r, 1.5), max(r * rng.uniform(0.6, 1.0), 1.5))
        alpha = _blob(hu.shape, (float(xs[k]), float(ys[k])), radii, rng.uniform(0, np.pi), rng)
        alpha *= fade
        if rng.random() < spec.hyper_share:
            offset = rng.uniform(*spec.hyper_offset_hu)
        else:
            offset = -rng.uniform(*spec.hypo_offset_hu)
        grain = cv2.GaussianBlur(rng.normal(0, 1, hu.shape).astype(np.float32), (0, 0), 1.0)
        grain *= rng.uniform(*spec.texture_hu) / (grain.std() + 1e-6)
        # Lesion density relative to the liver it replaces, keeping the slice's own noise.
        lesion = hu + (liver_hu + offset - hu) * 0.6 + offset * 0.4 + grain
        hu = hu + alpha * (lesion - hu)
        labels[(alpha > 0.5) & liver] = 2
    return hu, labels
