"""Reads shared by views and the API: a user's analyses, their stored images, account flags."""
from __future__ import annotations

import base64

from django.core.files.storage import default_storage
from django.db.models import QuerySet

from .models import AccountFlags, Analysis, AuditEvent

# Order in which result images are shown, with their captions.
IMAGE_CAPTIONS = {
    "original": "Original slice",
    "annotated": "Annotated: tumour contours and boxes, liver outline",
    "probability": "Tumour probability (colour-mapped)",
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


def must_change_password(user) -> bool:
    if not user.is_authenticated:
        return False
    return AccountFlags.objects.filter(user=user, must_change_password=True).exists()


def api_payload(analysis: Analysis) -> dict:
    """The JSON of `manage.py analyze --json` for this analysis, plus its id and timestamp.

    `notes` and `warnings` are what the result page shows (rows stored before they were part of the
    JSON get them from the row).
    """
    return {"id": analysis.pk, "created_at": analysis.created_at.isoformat(),
            "file": analysis.original_name, **analysis.result,
            "notes": list(analysis.notes or []), "warnings": list(analysis.warnings)}


def audit_events():
    """The audit trail, newest first, for the staff-only audit page."""
    return AuditEvent.objects.all()
