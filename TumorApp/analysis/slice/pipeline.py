"""The one entry point: `analyze(upload) -> AnalysisResult` (and `analyze_many` for batches).

load -> plausibility check -> preprocess -> segment -> post-process -> measure -> stage ->
confidence -> render; the web views, the API and the `analyze` management command all call this
and re-implement none of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import render
from .confidence import assess
from ..config import CONTRACT
from ..errors import InputError
from ..io.loading import CTSlice, load
from .measure import Lesion, measure_lesions
from .plausibility import check
from .postprocess import clean
from .preprocess import network_unit, to_uint8, to_unit
from .segment import Segmentation, SegmenterLike, segment_many
from .staging import INCONCLUSIVE, NO_TUMOR, stage

Source = bytes | str | Path


@dataclass
class AnalysisResult:
    tumor_detected: bool
    stage: str | None
    stage_label: str  # "Stage II (size-based estimate, not a clinical stage)" / NO_TUMOR / INCONCLUSIVE
    affected_percent: float
    liver_area_px: int
    tumor_area_px: int
    pixel_spacing_mm: tuple[float, float]  # (row, col)
    spacing_source: str  # "dicom" / "user" / "assumed"
    tumors: list[Lesion]
    notes: list[str]
    liver_mask: np.ndarray  # uint8 0/255, input height x width
    tumor_mask: np.ndarray  # uint8 0/255, input height x width
    liver_prob: np.ndarray  # float32 [0, 1], input grid
    tumor_prob: np.ndarray  # float32 [0, 1], input grid
    mirrored: bool  # analysed left-right mirrored (input was not in radiological orientation)
    source: str  # "dicom", "png", "jpeg", ...
    filename: str = ""
    images: dict[str, bytes] = field(default_factory=dict)
    # No liver on the slice: neither "tumour" nor "no tumour" (never a green "No Tumor Detected").
    inconclusive: bool = False
    confidence: float = 0.0  # slice verdict, [0, 1] (confidence.py)
    lesion_confidence: list[float] = field(default_factory=list)  # one per tumour, same order
    # Findings that put the figures in doubt, as user-facing sentences shown with the result: odd
    # but possible input (plausibility.py), an unusual pixel spacing.
    warnings: list[str] = field(default_factory=list)
    # What ran the network, e.g. "openvino-bf16 on CPU" (runtime.describe); "" for a stand-in.
    inference: str = ""

    @property
    def low_confidence(self) -> bool:
        return is_low(self.confidence)

    def to_dict(self) -> dict:
        """The JSON contract shared by the CLI and the API."""
        return {
            "tumor_detected": self.tumor_detected,
            "stage": self.stage,
            "affected_percent": round(self.affected_percent, 2),
            "liver_area_px": self.liver_area_px,
            "tumor_area_px": self.tumor_area_px,
            "pixel_spacing_mm": [round(v, 4) for v in self.pixel_spacing_mm],
            "spacing_source": self.spacing_source,
            "tumors": [{**lesion_dict(lesion), **confidence_dict(self.lesion_confidence[i])}
                       for i, lesion in enumerate(self.tumors)],
            "inconclusive": self.inconclusive,
            "mirrored": self.mirrored,
            **confidence_dict(self.confidence),
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "inference": self.inference,
        }


def is_low(confidence: float) -> bool:
    """Below `CONTRACT.low_confidence`, judged on the rounded value the JSON shows."""
    return round(confidence, 3) < CONTRACT.low_confidence


def confidence_dict(value: float) -> dict:
    return {"confidence": round(value, 3), "low_confidence": is_low(value)}


def lesion_dict(lesion: Lesion) -> dict:
    return {
        "area_px": lesion.area_px,
        "area_mm2": round(lesion.area_mm2, 2),
        "perimeter_px": round(lesion.perimeter_px, 2),
        "perimeter_mm": round(lesion.perimeter_mm, 2),
        "eccentricity": round(lesion.eccentricity, 3),
        "max_diameter_mm": round(lesion.max_diameter_mm, 2),
        "bbox": list(lesion.bbox),
        "centroid": [round(v, 1) for v in lesion.centroid],
        "side": lesion.side,
        "part": lesion.part,
    }


def analyze(data: Source, *, filename: str = "", pixel_spacing: float | None = None,
            segmenter: SegmenterLike | None = None, second_pass: bool = True,
            render_images: bool = True) -> AnalysisResult:
    """Analyse one CT slice (PNG/JPEG/DICOM bytes or path).

    Raises `InputError` for input that cannot be analysed.  `segmenter` defaults to the trained
    network (loaded once per process); tests pass their own.  `second_pass` runs the network again
    on a crop around the liver.
    """
    spacing_user = _check_user_spacing(pixel_spacing)
    ct = load(data, filename=filename)
    _refuse_impossible_spacing(ct)
    warnings = check(ct).warnings
    unit = to_unit(ct)
    segmenter = segmenter or _default_segmenter()
    seg = segment_many([network_unit(ct)], segmenter, second_pass=second_pass,
                       check_mirror=[_may_be_mirrored(ct)])[0]
    return _finish(ct, unit, seg, spacing_user, render_images, warnings, inference=_describe(segmenter))


def analyze_many(items: Iterable[Source], *, pixel_spacing: float | None = None,
                 segmenter: SegmenterLike | None = None, batch_size: int = 8, second_pass: bool = True,
                 render_images: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> list[AnalysisResult | InputError]:
    """Analyse many slices, `batch_size` at a time through the network.

    Returns, in order, an `AnalysisResult` or the `InputError` that file raised.  `progress(done,
    total)` is called after each batch.
    """
    spacing_user = _check_user_spacing(pixel_spacing)
    items = list(items)
    model = segmenter
    results: list[AnalysisResult | InputError] = []
    for start in range(0, len(items), max(1, batch_size)):
        chunk = items[start:start + max(1, batch_size)]
        loaded: list[tuple[int, CTSlice, np.ndarray]] = []
        warned: list[tuple[str, ...]] = []
        outcome: list[AnalysisResult | InputError | None] = [None] * len(chunk)
        for i, item in enumerate(chunk):
            try:
                ct = load(item)
                _refuse_impossible_spacing(ct)
                warned.append(check(ct).warnings)
            except InputError as exc:
                outcome[i] = exc
                continue
            loaded.append((i, ct, to_unit(ct)))
        if loaded and model is None:  # only load the network when there is something to run
            model = _default_segmenter()
        segs = segment_many([network_unit(ct) for _, ct, _ in loaded], model, second_pass=second_pass,
                            batch_size=2 * max(1, batch_size),
                            check_mirror=[_may_be_mirrored(ct) for _, ct, _ in loaded])
        for (i, ct, unit), seg, warnings in zip(loaded, segs, warned):
            outcome[i] = _finish(ct, unit, seg, spacing_user, render_images, warnings, inference=_describe(model))
        results.extend(outcome)  # type: ignore[arg-type]
        if progress:
            progress(len(results), len(items))
    return results


def _may_be_mirrored(ct: CTSlice) -> bool:
    """HU data (DICOM, 16-bit HU exports) follow the radiological convention; display pictures
    (like the original app's mirrored PNG slices) may not, so only those get the mirror test."""
    return not ct.is_hu


def _default_segmenter() -> SegmenterLike:
    from ..model.runtime import get_segmenter

    return get_segmenter()


def _describe(segmenter: SegmenterLike) -> str:
    from ..model.runtime import describe

    return describe(segmenter)


def _check_user_spacing(pixel_spacing: float | None) -> float | None:
    if pixel_spacing is None:
        return None
    try:
        value = float(pixel_spacing)
    except (TypeError, ValueError) as exc:
        raise InputError("The pixel spacing must be a number of millimetres.") from exc
    low, high = CONTRACT.spacing_limits_mm
    if not math.isfinite(value) or not low <= value <= high:
        raise InputError(f"The pixel spacing must be between {low:g} and {high:g} mm (given: {value:g} mm).")
    return value


def _refuse_impossible_spacing(ct: CTSlice) -> None:
    """Before the network runs: refuse a DICOM spacing no CT slice has (the user's is checked on entry)."""
    if ct.spacing_mm is None:
        return
    low, high = CONTRACT.spacing_limits_mm
    if not all(low <= v <= high for v in ct.spacing_mm):
        raise InputError(f"The pixel spacing in the DICOM file ({ct.spacing_mm[0]:g} x {ct.spacing_mm[1]:g} mm) "
                         f"is outside {low:g}-{high:g} mm: no CT slice has it, so sizes in mm would be meaningless.")


def _spacing_warnings(spacing: tuple[float, float], source: str) -> list[str]:
    """Flag a spacing that is possible but unusual for abdominal CT (the assumed one never is)."""
    low, high = CONTRACT.spacing_plausible_mm
    if source == "assumed" or all(low <= v <= high for v in spacing):
        return []
    where = "in the DICOM file" if source == "dicom" else "entered"
    return [f"The pixel spacing {where} ({spacing[0]:g} x {spacing[1]:g} mm) is unusual for abdominal CT "
            f"({low:g}-{high:g} mm): check it, since the sizes in mm and the stage depend on it."]


def _resolve_spacing(ct: CTSlice, user: float | None, notes: list[str]) -> tuple[tuple[float, float], str]:
    """DICOM spacing first, else the user's value, else the assumed default (flagged)."""
    if ct.spacing_mm is not None:
        if user is not None and not np.allclose(ct.spacing_mm, (user, user), rtol=1e-3):
            notes.append(f"The pixel spacing in the DICOM file ({ct.spacing_mm[0]:g} x "
                         f"{ct.spacing_mm[1]:g} mm) was used instead of the value given ({user:g} mm).")
        return ct.spacing_mm, "dicom"
    if user is not None:
        return (user, user), "user"
    notes.append(f"Pixel spacing unknown: assumed {CONTRACT.assumed_spacing_mm:g} mm, so sizes in mm "
                 "and the stage are approximate.")
    return (CONTRACT.assumed_spacing_mm, CONTRACT.assumed_spacing_mm), "assumed"


def segmentation_notes(*, liver_found: bool, mirrored: bool) -> list[str]:
    """What the outline says about the slice, written from the result's typed fields; a corrected
    outline gets its own (analysis/slice/correct.py), in place of the network's."""
    if not liver_found:
        return ["No liver was found on this slice, so nothing can be said about tumours on it "
                "(is it a slice through the liver?)."]
    if mirrored:  # without a liver the orientation choice means nothing: say nothing
        return ["The input looked mirrored (liver on the image right); it was analysed in "
                "radiological orientation."]
    return []


def _finish(ct: CTSlice, unit: np.ndarray, seg: Segmentation, user_spacing: float | None,
            render_images: bool, warnings: Iterable[str] = (), inference: str = "") -> AnalysisResult:
    notes = list(ct.notes)
    spacing, spacing_source = _resolve_spacing(ct, user_spacing, notes)
    warnings = [*warnings, *_spacing_warnings(spacing, spacing_source)]
    masks = clean(seg.liver_prob, seg.tumor_prob, spacing)
    notes += segmentation_notes(liver_found=masks.liver_found, mirrored=seg.mirrored)
    lesions = measure_lesions(masks.tumor_labels, masks.liver, spacing, mirrored=seg.mirrored)
    liver_area, tumor_area = int(masks.liver.sum()), int(masks.tumor.sum())
    staging = stage(lesions, liver_area_px=liver_area, tumor_area_px=tumor_area,
                    liver_found=masks.liver_found)
    sure = assess(seg, masks, spacing)

    images: dict[str, bytes] = {}
    if render_images:
        grey = to_uint8(unit)
        images = render.pngs({
            "original": grey,
            "annotated": render.annotated(grey, masks.liver, masks.tumor_labels, lesions),
            "mask": render.mask_image(masks.liver, masks.tumor),
            "probability": render.probability_image(grey, seg.liver_prob, seg.tumor_prob),
            "threshold": render.threshold_image(masks.liver_threshold, masks.tumor_threshold),
            "components": render.components_image(masks.liver, masks.tumor_labels),
        })
    return AnalysisResult(
        tumor_detected=staging.tumor_detected,
        stage=staging.stage,
        stage_label=staging.label,
        affected_percent=staging.affected_percent,
        liver_area_px=liver_area,
        tumor_area_px=tumor_area,
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
        spacing_source=spacing_source,
        tumors=lesions,
        notes=notes,
        liver_mask=masks.liver.astype(np.uint8) * 255,
        tumor_mask=masks.tumor.astype(np.uint8) * 255,
        liver_prob=seg.liver_prob,
        tumor_prob=seg.tumor_prob,
        mirrored=seg.mirrored,
        source=ct.source,
        filename=ct.filename,
        images=images,
        inconclusive=staging.inconclusive,
        confidence=sure.slice,
        lesion_confidence=list(sure.lesions),
        warnings=list(warnings),
        inference=inference,
    )


__all__ = ["AnalysisResult", "INCONCLUSIVE", "InputError", "Lesion", "NO_TUMOR", "analyze", "analyze_many",
           "segmentation_notes"]
