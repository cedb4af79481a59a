"""Forms of the PACS pages and API: a series search, a series to retrieve."""
from __future__ import annotations

import re

from django import forms

# DICOM UIDs: digits and dots, at most 64 characters.
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# DICOM date matching: YYYYMMDD, or a range with either end open.
DATE = re.compile(r"^(\d{8})?(-(\d{8})?)?$")


def _uid(value: str) -> str:
    value = (value or "").strip()
    if value and (len(value) > 64 or not UID.fullmatch(value)):
        raise forms.ValidationError("Not a DICOM UID (digits and dots, at most 64 characters).", code="invalid")
    return value


class SearchForm(forms.Form):
    """At least one filter; the PACS matches `*` wildcards in the patient's name and ID."""

    patient_id = forms.CharField(label="Patient ID", max_length=64, required=False)
    patient_name = forms.CharField(label="Patient name", max_length=64, required=False,
                                   help_text="DICOM form, e.g. DOE^JOHN; * matches anything (DOE*).")
    study_date = forms.CharField(label="Study date", max_length=17, required=False,
                                 help_text="YYYYMMDD, or a range YYYYMMDD-YYYYMMDD.")
    accession_number = forms.CharField(label="Accession number", max_length=16, required=False)

    def clean_study_date(self):
        value = self.cleaned_data["study_date"].strip().replace("/", "").replace(" ", "")
        if value and (value == "-" or not DATE.match(value)):
            raise forms.ValidationError("Use YYYYMMDD or YYYYMMDD-YYYYMMDD.", code="invalid")
        return value

    def clean(self):
        data = super().clean()
        if not any((data.get(k) or "").strip() for k in self.fields):
            raise forms.ValidationError("Give at least one of patient ID, name, study date or accession number.",
                                        code="empty")
        return {k: (v or "").strip() for k, v in data.items()}


class RetrieveForm(forms.Form):
    series_uid = forms.CharField(max_length=64, error_messages={"required": "Send the series' 'series_uid'."})
    study_uid = forms.CharField(max_length=64, required=False)

    def clean_series_uid(self):
        return _uid(self.cleaned_data["series_uid"])

    def clean_study_uid(self):
        return _uid(self.cleaned_data["study_uid"])
