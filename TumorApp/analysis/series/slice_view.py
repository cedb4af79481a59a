"""One slice of a stored series as a PNG for the slice viewer: a window preset and the mask overlays.

Rendered on request (lazily), one slice at a time from memory-mapped arrays, so a 1000-slice
series costs nothing until someone scrolls to a slice.  No Django.
"""
from __future__ import annotations

import cv2
import numpy as np

from ..labels import LIVER, TUMOR
from ..labels import WINDOWS as LABEL_WINDOWS
from ..slice.preprocess import window_hu

# The viewer's presets (name -> level and width in HU), from the one registry.
WINDOWS = {name: (w.level, w.width) for name, w in LABEL_WINDOWS.items()}


def render_slice(hu: np.ndarray, labels: np.ndarray | None, window: str = "abdomen") -> bytes:
    """HU (y, x) and labels 0/1/2 (or None for no overlay) -> PNG bytes (liver outlined, tumour filled)."""
    centre, width = WINDOWS.get(window, WINDOWS["abdomen"])
    grey = (window_hu(np.asarray(hu), centre, width) * 255).astype(np.uint8)
    image = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if labels is not None:
        labels = np.asarray(labels)
        tumor = labels == 2
        if tumor.any():
            fill = image.copy()
            fill[tumor] = TUMOR.bgr
            image = cv2.addWeighted(fill, 0.45, image, 0.55, 0)
            contours, _ = cv2.findContours(tumor.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(image, contours, -1, TUMOR.bgr, 1)
        liver = (labels > 0).astype(np.uint8)
        contours, _ = cv2.findContours(liver, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(image, contours, -1, LIVER.bgr, 1)
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()
