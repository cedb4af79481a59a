"""Input validation for the slice upload form and the API (upload, mask corrections)."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from TumorApp.analysis.config import CONTRACT

MIN_SPACING_MM, MAX_SPACING_MM = CONTRACT.spacing_limits_mm


class AnalysisUploadForm(forms.Form):
    """One CT slice (PNG/JPEG/DICOM; the pipeline checks the content) and an optional pixel spacing."""

    file = forms.FileField(
        label="CT slice",
        help_text="PNG or JPEG (8- or 16-bit, grey, RGB or RGBA) or DICOM (.dcm or no extension).",
        error_messages={"required": "Choose a CT slice to upload.",
                        "empty": "The uploaded file is empty."},
    )
    pixel_spacing = forms.FloatField(
        label="Pixel spacing (mm)",
        required=False,
        min_value=MIN_SPACING_MM,
        max_value=MAX_SPACING_MM,
        help_text="Optional. Used only when the file carries none (a DICOM's own PixelSpacing wins).",
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 0.7"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.MAX_UPLOAD_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size:,} bytes; the limit is {limit:,} bytes ({filesizeformat(limit)}).",
                code="too_large")
        if upload.size == 0:
            raise forms.ValidationError("The uploaded file is empty.", code="empty")
        return upload


class MaskCorrectionForm(forms.Form):
    """The two corrected masks (`PUT /api/analyses/<id>/masks/`); the service checks the PNG content."""

    liver = forms.FileField(error_messages={"required": "The liver mask (PNG) is missing.",
                                            "empty": "The liver mask is empty."})
    tumor = forms.FileField(error_messages={"required": "The tumor mask (PNG) is missing.",
                                            "empty": "The tumor mask is empty."})
