"""Reads shared by views and the API: a user's analyses, their stored images, account flags."""
from __future__ import annotations

import base64

from django.core.files.storage import default_storage
from django.db.models import QuerySet

from ..models import Analysis, MaskVersion

# Order in which result images are shown, with their captions.
IMAGE_CAPTIONS = {
    "original": "Original slice",
    "annotated": "Annotated: tumour contours and boxes, liver outline",
    "probability": "Network output: liver and tumour probability (colour bar below)",
    "mask": "Segmentation mask (liver / tumour)",
    "threshold": "Thresholded network output",
    "components": "Connected components (candidate lesions)",
}


def analyses_for(user) -> QuerySet[Analysis]:
    """Only ever the user's own analyses, newest first."""
    return Analysis.objects.filter(owner=user).order_by("-created_at", "-id")


def image_bytes(analysis: Analysis, name: str) -> bytes | None:
    path = analysis.images.get(name)
    if not path:
        return None
    try:
        with default_storage.open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def embedded_images(analysis: Analysis) -> list[dict]:
    """The stored result PNGs as data URIs, in display order, with captions."""
    out = []
    for name, caption in IMAGE_CAPTIONS.items():
        data = image_bytes(analysis, name)
        if data:
            out.append({"name": name, "caption": caption,
                        "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii")})
    return out


def api_payload(analysis: Analysis) -> dict:
    """The JSON of `manage.py analyze --json` for this analysis, plus its id and timestamp.

    `notes` and `warnings` are what the result page shows (rows stored before they were part of the
    JSON get them from the row). Corrected analyses answer with the latest correction's result,
    plus who corrected it, when, its notes, and the network's own result as `model_result`.
    """
    payload = {"id": analysis.pk, "created_at": analysis.created_at.isoformat(),
               "file": analysis.original_name, **analysis.result,
               "notes": list(analysis.notes or []), "warnings": list(analysis.warnings), "corrected": False}
    latest, model = correction_of(analysis)
    if latest is not None:
        payload.update({"corrected": True, "corrected_by": latest.created_by_name,
                        "corrected_at": latest.created_at.isoformat(), "version": latest.number,
                        "notes": list(latest.notes), "model_result": model.result})
    return payload


def correction_of(analysis: Analysis) -> tuple[MaskVersion | None, MaskVersion | None]:
    """(latest correction, the network's version 0), or (None, None) for an uncorrected analysis."""
    versions = list(analysis.mask_versions.filter(number=0)) + list(
        analysis.mask_versions.filter(number__gt=0).order_by("-number")[:1])
    if len(versions) < 2:
        return None, None
    return versions[1], versions[0]


def editor_labels_png(analysis: Analysis, which: str) -> bytes | None:
    """The outline of "model" (the network's) or "current" (the latest version) as the label-map PNG
    the editor reads (`labels.encode_png`: pixel = label value). Before any correction both are the
    network's, read back from the stored "mask" picture."""
    from TumorApp.analysis import labels
    from TumorApp.analysis.slice.correct import label_map, mask_from_png, masks_from_mask_image

    version = analysis.mask_versions.order_by("number" if which == "model" else "-number").first()
    try:
        if version is None:
            data = image_bytes(analysis, "mask")
            if data is None:
                return None
            liver, tumor = masks_from_mask_image(data)
        else:
            with default_storage.open(version.liver_mask, "rb") as f:
                liver_png = f.read()
            with default_storage.open(version.tumor_mask, "rb") as f:
                tumor_png = f.read()
            shape = _png_shape(liver_png)
            liver = mask_from_png(liver_png, shape, "liver")
            tumor = mask_from_png(tumor_png, shape, "tumor")
    except OSError:
        return None
    return labels.encode_png(label_map(liver, tumor))


def _png_shape(data: bytes) -> tuple[int, int]:
    # PNG header: width and height are the big-endian words at bytes 16..24.
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def slice_hu(analysis: Analysis) -> tuple[bytes, int, int] | None:
    """The stored upload's pixels in Hounsfield units as little-endian int16 (row-major), with its
    width and height, for the editor's window presets; None when the upload has no HU."""
    import numpy as np

    from TumorApp.analysis.errors import InputError
    from TumorApp.analysis.io.loading import load

    try:
        with default_storage.open(analysis.upload.name, "rb") as f:
            ct = load(f.read(), filename=analysis.original_name)
    except (OSError, InputError):
        return None
    if not ct.is_hu:
        return None
    hu = np.clip(np.round(ct.pixels), -32768, 32767).astype("<i2")
    return hu.tobytes(), int(hu.shape[1]), int(hu.shape[0])


def compare_panels(analysis: Analysis) -> list[dict] | None:
    """For a corrected analysis: the network's and the corrected figures and annotated picture."""
    latest, model = correction_of(analysis)
    if latest is None:
        return None
    panels = []
    for key, title, version in (("corrected", "Corrected", latest), ("model", "Network (before correction)", model)):
        data = None
        path = version.images.get("annotated")
        if path:
            try:
                with default_storage.open(path, "rb") as f:
                    data = f.read()
            except OSError:
                data = None
        panels.append({"key": key, "title": title, "result": version.result,
                       "lesion_count": len(version.result.get("tumors", [])),
                       "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii") if data else ""})
    return panels


