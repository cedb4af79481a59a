"""Per-lesion measurements with scikit-image `regionprops`, in input pixels and in mm.

Location rules (approximate; a slice cannot show Cantlie's line):

* side: the patient's "right" or "left" liver lobe.  In radiological orientation the patient's
  right is on the image left.  A lesion whose centroid lies on the patient's right of the middle
  of the liver's horizontal extent on this slice is "right", otherwise "left".  On slices through
  the hilum that middle falls near the gallbladder-IVC (Cantlie) line; near the dome, where only
  the right lobe shows, the rule over-calls "left".  An input that was analysed mirrored (liver
  on the image right) is handled through `mirrored`.
* part: "anterior" when the lesion centroid is above the middle of the liver's vertical extent
  (anterior is the image top in axial CT), else "posterior".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.measure import find_contours, regionprops


@dataclass(frozen=True)
class Lesion:
    area_px: int
    area_mm2: float
    perimeter_px: float
    perimeter_mm: float
    eccentricity: float
    max_diameter_mm: float
    bbox: tuple[int, int, int, int]  # x, y, w, h in input pixels
    centroid: tuple[float, float]  # x, y in input pixels
    side: str  # patient's "right" / "left"
    part: str  # "anterior" / "posterior"


def measure_lesions(tumor_labels: np.ndarray, liver: np.ndarray, spacing_mm: tuple[float, float], *,
                    mirrored: bool = False) -> list[Lesion]:
    """One `Lesion` per label in `tumor_labels` (1..n, in label order).

    `spacing_mm` is (row, col); `mirrored` says the input is left-right mirrored relative to the
    radiological convention (so the patient's right is on the image right).
    """
    if tumor_labels.max(initial=0) == 0:
        return []
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    middle_x, middle_y = _liver_middle(liver)

    lesions = []
    px_regions = regionprops(tumor_labels)
    mm_regions = {r.label: r for r in regionprops(tumor_labels, spacing=spacing)}
    for region in px_regions:
        physical = mm_regions[region.label]
        min_row, min_col, max_row, max_col = region.bbox
        cy, cx = region.centroid
        perimeter_px = float(region.perimeter)
        on_image_left = cx < middle_x
        side = "right" if on_image_left != mirrored else "left"
        lesions.append(Lesion(
            area_px=int(region.area),
            area_mm2=float(region.area) * spacing[0] * spacing[1],
            perimeter_px=perimeter_px,
            perimeter_mm=perimeter_px * _perimeter_scale(region.image, spacing),
            eccentricity=float(physical.eccentricity),
            max_diameter_mm=float(physical.feret_diameter_max),
            bbox=(int(min_col), int(min_row), int(max_col - min_col), int(max_row - min_row)),
            centroid=(float(cx), float(cy)),
            side=side,
            part="anterior" if cy < middle_y else "posterior",
        ))
    return lesions


def _liver_middle(liver: np.ndarray) -> tuple[float, float]:
    """(x, y) of the middle of the liver's bounding box (of the image if there is no liver)."""
    xs = np.flatnonzero(liver.any(axis=0))
    ys = np.flatnonzero(liver.any(axis=1))
    if xs.size == 0:
        h, w = liver.shape
        return (w - 1) / 2.0, (h - 1) / 2.0
    return (xs[0] + xs[-1]) / 2.0, (ys[0] + ys[-1]) / 2.0


def _perimeter_scale(image: np.ndarray, spacing: tuple[float, float]) -> float:
    """mm per pixel of perimeter.  regionprops' perimeter is isotropic only; for anisotropic
    spacing scale it by how the region's outline stretches (its contour length in mm / in px)."""
    if spacing[0] == spacing[1]:
        return spacing[0]
    padded = np.pad(image.astype(float), 1)
    length_px = length_mm = 0.0
    for contour in find_contours(padded, 0.5):
        steps = np.diff(contour, axis=0)
        length_px += float(np.hypot(steps[:, 0], steps[:, 1]).sum())
        length_mm += float(np.hypot(steps[:, 0] * spacing[0], steps[:, 1] * spacing[1]).sum())
    if length_px == 0:
        return float(np.sqrt(spacing[0] * spacing[1]))
    return length_mm / length_px
