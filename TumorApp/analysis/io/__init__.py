"""Readers of uploads: DICOM, PNG/JPEG, NIfTI, zips -> slices and volumes."""
