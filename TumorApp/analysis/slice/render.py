"""Pictures of an analysis as PNG bytes (OpenCV): annotated slice, masks, probability, components.

Colours (BGR): liver green, tumour red, lesion boxes yellow with their number from the table.
All images have the input's own size and orientation.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Sequence

import cv2
import numpy as np
from scipy import ndimage as ndi

from ..labels import BOX_RGB, LIVER, TUMOR
from .measure import Lesion

LIVER_BGR = LIVER.bgr
TUMOR_BGR = TUMOR.bgr
BOX_BGR = BOX_RGB[::-1]


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:  # pragma: no cover - only on an OpenCV without PNG support
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


# PNG encoding is the largest cost after the network; cv2.imencode releases the GIL, so the six
# pictures of one analysis are encoded on all cores at once (about 21 -> 13 ms on two cores).
_ENCODERS = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="png")


def pngs(images: Mapping[str, np.ndarray]) -> dict[str, bytes]:
    """`png` of each picture, encoded concurrently; same keys and order."""
    return dict(zip(images, _ENCODERS.map(png, images.values())))


def _thickness(shape: tuple[int, int]) -> int:
    return max(1, int(round(max(shape) / 320)))


def annotated(grey: np.ndarray, liver: np.ndarray, tumor_labels: np.ndarray,
              lesions: Sequence[Lesion]) -> np.ndarray:
    """Liver outline, tumour contours and numbered bounding boxes on the slice."""
    image = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    t = _thickness(grey.shape)
    contours, _ = cv2.findContours(liver.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, LIVER_BGR, t, cv2.LINE_AA)
    contours, _ = cv2.findContours((tumor_labels > 0).astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, TUMOR_BGR, t, cv2.LINE_AA)
    # Lesion numbers: large enough to read on a 512 px slice shown small, with a dark outline so
    # they stay readable over bright bone or contrast.
    scale = max(0.5, max(grey.shape) / 700)
    for number, lesion in enumerate(lesions, start=1):
        x, y, w, h = lesion.bbox
        pad = t + 1
        cv2.rectangle(image, (x - pad, y - pad), (x + w + pad - 1, y + h + pad - 1), BOX_BGR, t)
        label_y = y - pad - 3 if y - pad - 3 > 20 * scale else y + h + pad + int(22 * scale)
        origin = (max(x - pad, 0), int(label_y))
        cv2.putText(image, str(number), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(1, t) + 2,
                    cv2.LINE_AA)
        cv2.putText(image, str(number), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, BOX_BGR, max(1, t), cv2.LINE_AA)
    return image


def mask_image(liver: np.ndarray, tumor: np.ndarray) -> np.ndarray:
    image = np.zeros(liver.shape + (3,), np.uint8)
    image[liver] = LIVER_BGR
    image[tumor] = TUMOR_BGR
    return image


def probability_image(grey: np.ndarray, liver_prob: np.ndarray, tumor_prob: np.ndarray) -> np.ndarray:
    """One colour map for both channels: 0 background (blue), ~0.5 liver, ~1 tumour (red)."""
    combined = np.clip(0.5 * liver_prob + 0.5 * np.maximum(tumor_prob, 0), 0, 1)
    coloured = cv2.applyColorMap(np.round(combined * 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(coloured, 0.7, base, 0.3, 0)


def threshold_image(liver_threshold: np.ndarray, tumor_threshold: np.ndarray) -> np.ndarray:
    """The raw thresholds before clean-up: liver grey, tumour white."""
    image = np.zeros(liver_threshold.shape, np.uint8)
    image[liver_threshold] = 128
    image[tumor_threshold] = 255
    return image


def components_image(liver: np.ndarray, tumor_labels: np.ndarray) -> np.ndarray:
    """Connected components of the final masks, each in its own colour."""
    liver_labels, liver_count = ndi.label(liver & (tumor_labels == 0), structure=np.ones((3, 3), bool))
    tumor_count = int(tumor_labels.max(initial=0))
    # One colour table indexed by a combined label: 0 background, then liver pieces, then lesions.
    table = np.zeros((1 + liver_count + tumor_count, 3), np.uint8)
    for i in range(1, liver_count + 1):
        table[i] = _palette(i, saturation=90, value=150)
    for i in range(1, tumor_count + 1):
        table[liver_count + i] = _palette(i + 7, saturation=230, value=255)
    combined = np.where(tumor_labels > 0, tumor_labels + liver_count, liver_labels)
    return table[combined]


def _palette(i: int, *, saturation: int, value: int) -> tuple[int, int, int]:
    hue = int((i * 0.618033988749895 % 1.0) * 180)
    bgr = cv2.cvtColor(np.uint8([[[hue, saturation, value]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in bgr)
