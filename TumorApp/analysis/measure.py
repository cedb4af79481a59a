"""Per-lesion measurements with scikit-image `regionprops`, in input pixels and in mm.

Location rules (approximate; a slice cannot show Cantlie's line):

* side: the patient's "right" or "left" liver lobe.  In radiological orientation the patient's
  right is on the image left.  A lesion whose centroid lies on the patient's right of the liver's
  own centroid is "right", otherwise "left".  The right lobe is the bulk of the liver, so the
  liver centroid sits inside it, close to the lobar boundary; slices where the liver is mirrored
  in the input are handled through `mirrored`.
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
    liver_cy, liver_cx = _liver_reference(liver)
    ys = np.flatnonzero(liver.any(axis=1))
    vertical_middle = (ys[0] + ys[-1]) / 2.0 if ys.size else liver_cy

    lesions = []
    px_regions = regionprops(tumor_labels)
    mm_regions = {r.label: r for r in regionprops(tumor_labels, spacing=spacing)}
    for region in px_regions:
        physical = mm_regions[region.label]
        min_row, min_col, max_row, max_col = region.bbox
        cy, cx = region.centroid
        perimeter_px = float(region.perimeter)
        on_image_left = cx < liver_cx
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
            part="anterior" if cy < vertical_middle else "posterior",
        ))
    return lesions


def _liver_reference(liver: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(liver)
    if ys.size == 0:
        h, w = liver.shape
        return h / 2.0, w / 2.0
    return float(ys.mean()), float(xs.mean())


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
