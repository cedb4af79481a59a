"""The series upload form, shared by the upload page and the API."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A list of uploaded files (Django's documented pattern for <input multiple>)."""

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)) and data:
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class SeriesUploadForm(forms.Form):
    """The files of one series (DICOM files, or a zip of them) or one NIfTI volume."""

    file = MultipleFileField(
        label="CT series",
        widget=MultipleFileInput(attrs={"multiple": True, "accept": ".dcm,.zip,.nii,.gz,application/dicom"}),
        help_text="All DICOM files of one axial CT series (select them all, or one .zip), or one NIfTI "
                  "volume (.nii or .nii.gz). Up to 1000 slices (about 850 of 512 x 512).",
        error_messages={"required": "Choose the files of one CT series, a zip, or a NIfTI volume."},
    )

    def clean_file(self):
        uploads = self.cleaned_data["file"]
        total = sum(u.size for u in uploads)
        limit = settings.MAX_SERIES_UPLOAD_BYTES
        if total > limit:
            raise forms.ValidationError(f"The upload is {filesizeformat(total)}; the limit is {filesizeformat(limit)}.",
                                        code="too_large")
        if any(u.size == 0 for u in uploads):
            raise forms.ValidationError("One of the files is empty.", code="empty")
        return uploads
