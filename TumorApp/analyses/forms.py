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
    """A corrected outline (`PUT /api/analyses/<id>/masks/`): one label map (`labels`, what the editor
    sends), or the two-mask form (`liver` and `tumor`). The service checks the PNG content."""

    labels = forms.FileField(required=False, error_messages={"empty": "The label map is empty."})
    liver = forms.FileField(required=False, error_messages={"empty": "The liver mask is empty."})
    tumor = forms.FileField(required=False, error_messages={"empty": "The tumor mask is empty."})

    def clean(self):
        data = super().clean()
        masks = [name for name in ("liver", "tumor") if data.get(name)]
        if data.get("labels"):
            if masks:
                raise forms.ValidationError("Send either the label map (labels) or the two masks (liver and "
                                            "tumor), not both.")
        elif not masks and not self.errors:
            raise forms.ValidationError("The label map (PNG, field labels) is missing.")
        else:
            for name in {"liver", "tumor"} - set(masks):
                self.add_error(name, f"The {name} mask (PNG) is missing.")
        return data
