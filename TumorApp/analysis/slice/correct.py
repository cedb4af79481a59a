"""Recompute an analysis from corrected masks, without the network: the same post-process rules
that still apply, measure, stage and render as `pipeline.analyze`.

A correction is the reader's call, so of the post-process rules only these apply:

* lesions are 8-connected tumour components, numbered largest first, and components under
  `CONTRACT.min_lesion_area_mm2` are brush noise, not lesions (dropped, with a note);
* tumour is part of the liver (liver = liver OR tumour), so the affected % stays <= 100.
  Tumour painted outside the liver outline is kept and counted, with a note.

The liver is taken as drawn: no hole filling, no largest-piece rule, no tumour-in-liver limit.
"""
from __future__ import annotations

import numpy as np

from . import render
from .. import labels
from ..config import CONTRACT
from ..errors import InputError
from ..io.loading import CTSlice
from .measure import measure_lesions
from .pipeline import AnalysisResult, segmentation_notes
from .postprocess import lesion_labels, mm2_to_px
from .preprocess import to_uint8, to_unit
from .staging import stage

# Pictures that come from the masks; "probability" and "threshold" show the network's own output
# and stay as the network left them.
MASK_IMAGES = ("annotated", "mask", "components")


def mask_from_png(data: bytes, shape: tuple[int, int], name: str) -> np.ndarray:
    """One mask of the two-mask form -> bool (H, W): PNG, 8 bits per sample, exactly `shape`;
    grey > 127 is inside.  Stored versions keep their masks in this form."""
    return labels.read_png(data, shape, f"{name} mask", lambda img: np.asarray(img.convert("L"))) > 127


def recompute(ct: CTSlice, liver: np.ndarray, tumor: np.ndarray, *, spacing_mm: tuple[float, float],
              spacing_source: str, mirrored: bool = False, notes: tuple[str, ...] = (),
              render_images: bool = True, inference: str = "") -> AnalysisResult:
    """The `AnalysisResult` of `ct` with these liver/tumour masks (bool, the slice's own size).

    `spacing_mm`, `spacing_source` and `mirrored` are the original analysis's (spacing was resolved
    once at upload; `mirrored` only decides which image side is the patient's right).
    `notes` are carried over (the loader's and the spacing's, not the network's segmentation notes);
    the corrected outline's segmentation notes (no liver, mirrored) and notes about the correction
    are appended.
    Images: `MASK_IMAGES` plus "original".
    """
    liver = np.asarray(liver, dtype=bool)
    tumor = np.asarray(tumor, dtype=bool)
    if liver.shape != ct.shape or tumor.shape != ct.shape:
        raise InputError(f"The masks must be the image's own size ({ct.shape[1]}x{ct.shape[0]}).")
    spacing = (float(spacing_mm[0]), float(spacing_mm[1]))
    fixes: list[str] = []  # what the recomputation changed in the drawing

    outside = int((tumor & ~liver).sum())
    if outside:
        fixes.append(f"{outside} tumour pixel(s) lie outside the corrected liver outline; they are "
                         "counted as tumour (and as liver, for the affected %).")
    labels = lesion_labels(tumor, spacing)
    dropped = int(tumor.sum() - (labels > 0).sum())
    if dropped:
        fixes.append(f"{dropped} tumour pixel(s) in pieces under {CONTRACT.min_lesion_area_mm2:g} mm² "
                         f"(~{mm2_to_px(CONTRACT.min_lesion_area_mm2, spacing):.0f} px) were ignored as "
                         "brush noise.")
    tumor = labels > 0
    liver = liver | tumor
    out_notes = [*notes, *segmentation_notes(liver_found=bool(liver.any()), mirrored=mirrored), *fixes]
    lesions = measure_lesions(labels, liver, spacing, mirrored=mirrored)
    liver_area, tumor_area = int(liver.sum()), int(tumor.sum())
    staging = stage(lesions, liver_area_px=liver_area, tumor_area_px=tumor_area, liver_found=bool(liver.any()))

    unit = to_unit(ct)
    images: dict[str, bytes] = {}
    if render_images:
        grey = to_uint8(unit)
        images = render.pngs({
            "original": grey,
            "annotated": render.annotated(grey, liver, labels, lesions),
            "mask": render.mask_image(liver, tumor),
            "components": render.components_image(liver, labels),
        })
    return AnalysisResult(
        tumor_detected=staging.tumor_detected,
        stage=staging.stage,
        stage_label=staging.label,
        affected_percent=staging.affected_percent,
        liver_area_px=liver_area,
        tumor_area_px=tumor_area,
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        tumors=lesions,
        notes=out_notes,
        liver_mask=liver.astype(np.uint8) * 255,
        tumor_mask=tumor.astype(np.uint8) * 255,
        # No network ran: the "probabilities" are the corrected masks themselves.
        liver_prob=liver.astype(np.float32),
        tumor_prob=tumor.astype(np.float32),
        mirrored=mirrored,
        source=ct.source,
        filename=ct.filename,
        images=images,
        inconclusive=staging.inconclusive,
        # A person drew these outlines: the network's own confidence stays in the model result.
        confidence=1.0,
        lesion_confidence=[1.0] * len(lesions),
        inference=inference,  # the network's draft that was corrected
    )


def masks_from_mask_image(mask_png: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(liver, tumour) bool masks back from the "mask" picture `render.mask_image` drew (lossless
    PNG: liver pixels in the liver colour, tumour pixels in the tumour colour, background black)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(mask_png, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("The stored mask picture could not be read.")
    tumor = np.all(image == np.array(render.TUMOR_BGR, np.uint8), axis=2)
    liver = image.any(axis=2)
    return liver, tumor


def label_map(liver: np.ndarray, tumor: np.ndarray) -> np.ndarray:
    """uint8 label map of the registry's values (tumour wins), the training data's convention too."""
    out = np.full(liver.shape, labels.BACKGROUND.value, np.uint8)
    out[liver] = labels.LIVER.value
    out[tumor] = labels.TUMOR.value
    return out


def masks_from_labels(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(liver, tumour) bool masks of a label map; tumour counts as liver."""
    tumor = values == labels.TUMOR.value
    return (values == labels.LIVER.value) | tumor, tumor


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as the 0/255 8-bit grey PNG the versions store (and the two-mask API form takes)."""
    return render.png(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)
