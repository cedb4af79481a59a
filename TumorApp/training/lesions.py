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

    radius_mm: tuple[float, float] = (3.0, 50.0)  # up to 100 mm across
    large_share: float = 0.3                      # drawn from the upper half of the range
    hypo_offset_hu: tuple[float, float] = (15.0, 70.0)   # lesion darker than liver by this much
    hyper_offset_hu: tuple[float, float] = (15.0, 40.0)  # ... or brighter, for `hyper_share` of lesions
    hyper_share: float = 0.1
    texture_hu: tuple[float, float] = (3.0, 12.0)        # std of the lesion's grain
    heterogeneous_share: float = 0.4                     # lesions with a blotchy, low-frequency interior
    heterogeneity_hu: tuple[float, float] = (10.0, 35.0)
    rim_share: float = 0.35                              # lesions with an iso-dense rim (still tumour)
    rim_fraction: tuple[float, float] = (0.15, 0.35)     # rim width as a share of the radius
    foci_share: float = 0.25                             # lesions with bright (calcified/enhancing) foci
    foci_hu: tuple[float, float] = (60.0, 250.0)
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


def _radius_px(spec: LesionSpec, px: float, rng: np.random.Generator) -> float:
    low, high = spec.radius_mm
    if rng.random() < spec.large_share:
        low = (low + high) / 2
    return rng.uniform(low, high) / px


def _texture(shape, sigma: float, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise of standard deviation `amplitude` and grain `sigma` px."""
    t = cv2.GaussianBlur(rng.normal(0, 1, shape).astype(np.float32), (0, 0), sigma)
    return t * (amplitude / (t.std() + 1e-6))


def insert_lesions(hu: np.ndarray, labels: np.ndarray, spacing_mm: float, rng: np.random.Generator,
                   spec: LesionSpec = SPEC) -> tuple[np.ndarray, np.ndarray]:
    """Copies of (hu, labels) with 1..max_lesions synthetic lesions centred in normal parenchyma
    (label 1: never over a real tumour, nor in label 3 where tumour is unknown), labelled 2.

    A lesion is hypo- (mostly) or hyperdense, with a grain; some have a blotchy interior, an
    iso-dense rim (the lesion's edge at the liver's own density, which the label still covers),
    or small bright foci.  Returns the inputs unchanged when too little normal parenchyma shows.
    """
    liver = labels > 0
    healthy = labels == 1
    inside = cv2.erode(healthy.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if inside.sum() < spec.min_liver_px:
        return hu, labels
    liver_hu = float(np.median(hu[healthy]))
    hu, labels = hu.astype(np.float32).copy(), labels.copy()
    ys, xs = np.nonzero(inside)
    fade = cv2.GaussianBlur(healthy.astype(np.float32), (0, 0), 1.0)  # lesions fade out at the liver edge
    px = spacing_mm if np.isfinite(spacing_mm) and spacing_mm > 0 else 1.0
    for _ in range(int(rng.integers(1, spec.max_lesions + 1))):
        k = int(rng.integers(len(ys)))
        r = _radius_px(spec, px, rng)
        radii = (max(r, 1.5), max(r * rng.uniform(0.6, 1.0), 1.5))
        alpha = _blob(hu.shape, (float(xs[k]), float(ys[k])), radii, rng.uniform(0, np.pi), rng)
        alpha *= fade
        if rng.random() < spec.hyper_share:
            offset = rng.uniform(*spec.hyper_offset_hu)
        else:
            offset = -rng.uniform(*spec.hypo_offset_hu)
        # the offset may vary across the lesion: full in the core, fading to 0 at an iso-dense rim
        strength = np.ones(hu.shape, np.float32)
        if rng.random() < spec.rim_share:
            rim = max(1.0, rng.uniform(*spec.rim_fraction) * min(radii))
            core = (alpha > 0.5).astype(np.uint8)
            depth = cv2.distanceTransform(core, cv2.DIST_L2, 3)
            strength = np.clip(depth / rim, 0.0, 1.0).astype(np.float32)
        grain = _texture(hu.shape, 1.0, rng.uniform(*spec.texture_hu), rng)
        if rng.random() < spec.heterogeneous_share:
            grain += _texture(hu.shape, max(2.0, min(radii) / 4), rng.uniform(*spec.heterogeneity_hu), rng)
        # Lesion density relative to the liver it replaces, keeping the slice's own noise.
        lesion = hu + strength * ((liver_hu + offset - hu) * 0.6 + offset * 0.4) + grain
        if rng.random() < spec.foci_share:
            foci = _texture(hu.shape, 1.2, 1.0, rng)
            spots = (foci > np.quantile(foci[alpha > 0.5], 0.93)) if (alpha > 0.5).any() else foci > 9
            lesion = lesion + spots * rng.uniform(*spec.foci_hu)
        hu = hu + alpha * (lesion - hu)
        labels[(alpha > 0.5) & liver] = 2
    return hu, labels
