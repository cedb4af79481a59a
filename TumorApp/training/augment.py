"""Random 128x128 training views of a slice: full field or liver crop, affine, HU window, noise.

No left-right flips: the network may rely on the liver lying on the image left.
Targets have three channels: whole liver, tumour, and where the tumour channel is known (0
inside label 3, the unseparated liver of msd-slices), for the masked loss in `train.py`.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from ..analysis.config import CONTRACT
from ..analysis.slice.preprocess import display_to_network, window_hu
from .dataset import UNSEPARATED, Patient
from .lesions import insert_lesions

# Chance that a full-range HU slice is clipped to 0..255 HU and softened like msd-slices (256 px
# JPEG), so that look is a known input rather than a second domain only msd-slices shows.
CLIP_HU_CHANCE = 0.25
VIEW_OVERSAMPLE = 2  # views are warped at this multiple of the input size, then area-resized


def display_scale(patient: Patient, idx: int, rng: np.random.Generator | None = None,
                  image: np.ndarray | None = None, window: tuple[float, float] | None = None) -> np.ndarray:
    """The slice (or `image`, a changed copy of it) in [0, 1] through the network's `window`
    (center, width; default the contract's), randomly jittered if rng; pictures (not HU) are read
    as display-window HU first, as `preprocess.network_unit` does at inference."""
    img = patient.images[idx] if image is None else image
    center, width = window or (CONTRACT.window_center, CONTRACT.window_width)
    if rng is not None:
        center, width = center + rng.normal(0.0, 20.0), width * rng.uniform(0.7, 1.35)
    if not patient.is_hu:  # a picture: its grey read as display-window HU, as at inference
        return display_to_network(img, center, width)
    return window_hu(img, center, width)


def liver_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(mask)
    if len(ys) < 20:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop_box(box, margin: float, square: bool) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) grown by `margin` of its size on each side, optionally squared."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if square:
        w = h = max(w, h)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    w, h = w * (1 + 2 * margin), h * (1 + 2 * margin)
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _affine(box, size: int, scale: float = 1.0, angle_deg: float = 0.0, shift=(0.0, 0.0)) -> np.ndarray:
    """Matrix taking output pixel (u, v) of a size x size view to source coordinates inside `box`."""
    x0, y0, x1, y1 = box
    sx, sy = (x1 - x0) * scale / size, (y1 - y0) * scale / size
    a = math.radians(angle_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    lin = rot @ np.diag([sx, sy])
    centre = np.array([(x0 + x1) / 2 + shift[0] * (x1 - x0), (y0 + y1) / 2 + shift[1] * (y1 - y0)])
    offset = centre - lin @ np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    return np.hstack([lin, offset[:, None]]).astype(np.float64)


def warp(image: np.ndarray, m: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    return cv2.warpAffine(image, m, (size, size),
                          flags=(cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR) | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def targets(labels: np.ndarray) -> np.ndarray:
    """(H, W) labels -> (H, W, 3) float: whole liver, tumour, tumour label known (not label 3)."""
    return np.stack([(labels > 0), (labels == 2), (labels != UNSEPARATED)], axis=-1).astype(np.float32)


def clip_like_msd(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HU clipped to 0..255, halved in resolution and back, with a little noise (JPEG-like)."""
    h, w = hu.shape
    small = cv2.resize(np.clip(hu, 0.0, 255.0), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(back + rng.normal(0.0, 2.0, back.shape), 0.0, 255.0).astype(np.float32)


def sample_view(patient: Patient, idx: int, rng: np.random.Generator, size: int = CONTRACT.input_size,
                synthetic: float = 0.0, window: tuple[float, float] | None = None,
                clip_hu_chance: float = CLIP_HU_CHANCE):
    """One augmented (view, targets) pair.  `synthetic`: chance that an HU slice gets synthetic
    lesions painted into its liver (half that chance when it already shows a real tumour);
    `window`: the HU window (center, width) before jitter, default the contract's."""
    image, labels = patient.images[idx], patient.labels[idx]
    if patient.is_hu and synthetic > 0:
        chance = synthetic / 2 if (labels == 2).any() else synthetic
        if rng.random() < chance:
            image, labels = insert_lesions(image, labels, patient.spacing_mm, rng)
    if patient.is_hu and not patient.clipped_hu and rng.random() < clip_hu_chance:
        image = clip_like_msd(image, rng)
    img = display_scale(patient, idx, rng, image, window)
    full = (0.0, 0.0, float(img.shape[1]), float(img.shape[0]))
    box = liver_box(labels > 0)
    if box is not None and (not patient.full_field or rng.random() < 0.5):
        # square, as the second pass's crop is at inference
        region = crop_box(box, rng.uniform(0.03, 0.35), square=True)
    else:
        region = full
    # Warped at twice the input size, then area-averaged down, as inference area-resizes a
    # 512 px slice: a bilinear warp straight to 128 px would alias the CT noise into the view.
    m = _affine(region, VIEW_OVERSAMPLE * size, scale=rng.uniform(0.85, 1.2), angle_deg=rng.uniform(-12, 12),
                shift=rng.normal(0.0, 0.04, size=2))
    x = cv2.resize(warp(img, m, VIEW_OVERSAMPLE * size), (size, size), interpolation=cv2.INTER_AREA)
    y = (cv2.resize(warp(targets(labels), m, VIEW_OVERSAMPLE * size), (size, size),
                    interpolation=cv2.INTER_AREA) > 0.5).astype(np.float32)
    if rng.random() < 0.3:
        x = np.power(x, rng.uniform(0.75, 1.33)).astype(np.float32)
    if rng.random() < 0.2:
        x = cv2.GaussianBlur(x, (3, 3), rng.uniform(0.3, 1.0))
    if rng.random() < 0.5:
        x = x + rng.normal(0.0, rng.uniform(0.005, 0.03), x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0), y


EDGE_LIVER_FRACTION = 0.35  # a liver section under this share of the patient's largest is an edge slice


def slice_weights(patient: Patient) -> np.ndarray:
    """Sampling probabilities within a source: 45% tumour slices, 20% liver edge slices (the dome
    beside the heart, the tip beside bowel and kidney: the hard negatives), 20% the rest of the
    liver, 15% slices without liver.

    Where few slices show tumour (msd-slices: 13 of 603) they get a fifth, not 45%, so a
    handful of slices is not repeated hundreds of times an epoch."""
    has_tumour = (patient.labels == 2).any(axis=(1, 2))
    area = (patient.labels > 0).sum(axis=(1, 2))
    has_liver = (area > 0) & ~has_tumour
    edge = has_liver & (area < EDGE_LIVER_FRACTION * max(int(area.max()), 1))
    if not patient.full_field or len(np.unique(patient.patient_ids)) > 1:
        edge = np.zeros_like(edge)  # only a whole patient's series says which sections are its edges
    other = ~(has_tumour | has_liver)
    tumour_share = 0.45 if has_tumour.mean() > 0.1 else 0.2
    w = np.zeros(len(patient.labels))
    for group, share in ((has_tumour, tumour_share), (edge, 0.2), (has_liver & ~edge, 0.65 - tumour_share),
                         (other, 0.15)):
        if group.any():
            w[group] = share / group.sum()
    return w / w.sum()
