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

import io
import warnings

import numpy as np

from . import render
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
    """A mask upload -> bool (H, W): PNG, 8 bits per sample, exactly `shape`; > 127 is inside."""
    return grey_from_png(data, shape, f"{name} mask") > 127


def grey_from_png(data: bytes, shape: tuple[int, int], name: str) -> np.ndarray:
    """An uploaded PNG -> uint8 grey (H, W): 8 bits per sample, exactly `shape`.

    Grey, grey+alpha, RGB(A) and palette PNGs are read as their grey value (what a browser canvas
    writes); 16-bit and float images are refused so that no value is silently rescaled.  Also
    reads the series editor's label slices (issue 20).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(f"The {name} is empty.")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise InputError(f"The {name} must be a PNG image.")
    try:
        # PIL refuses a header of over 2 x MAX_IMAGE_PIXELS itself and warns above MAX_IMAGE_PIXELS:
        # both are a decompression bomb here (a mask is the slice's size), refused before decoding.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                size = (img.height, img.width)
                if size != tuple(shape):
                    raise InputError(f"The {name} is {img.width}x{img.height} pixels; it must be the "
                                     f"image's own size, {shape[1]}x{shape[0]}.")
                if img.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
                    raise InputError(f"The {name} must be an 8-bit PNG (it is {img.mode}).")
                img.load()
                grey = np.asarray(img.convert("L"))
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"The {name} declares far more pixels than the image has; it must be the "
                         f"image's own size, {shape[1]}x{shape[0]}.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"The {name} is not a readable PNG image.") from exc
    return grey


def recompute(ct: CTSlice, liver: np.ndarray, tumor: np.ndarray, *, spacing_mm: tuple[float, float],
              spacing_source: str, mirrored: bool = False, notes: tuple[str, ...] = (),
              render_images: bool = True) -> AnalysisResult:
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
    """uint8 labels 0 background, 1 liver, 2 tumour (tumour wins), the training data's convention."""
    labels = np.zeros(liver.shape, np.uint8)
    labels[liver] = 1
    labels[tumor] = 2
    return labels


def mask_png(mask: np.ndarray) -> bytes:
    """A bool mask as the 0/255 8-bit grey PNG the API takes and the versions store."""
    return render.png(np.asarray(mask, dtype=bool).astype(np.uint8) * 255)


def label_png(liver: np.ndarray, tumor: np.ndarray) -> bytes:
    """Both masks as one grey PNG for the editor: 0 background, 128 liver, 255 tumour."""
    return render.png(np.array([0, 128, 255], np.uint8)[label_map(liver, tumor)])
