"""Small DICOM series built from the committed real CT slices (tests/fixtures, IRCAD, CC BY-NC-ND).

The two fixture slices (3D-IRCADb-01 images 66 and 84, one series) are written again with new
positions and UIDs, so a test gets an N-slice axial series without any data outside the repo.
"""
from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SLICE_66 = FIXTURES / "analysis_ircadb01_066.dcm"
SLICE_84 = FIXTURES / "web_ircadb01_image_84.dcm"


def dicom_series(n: int, *, step: float = 1.6, sources: tuple[Path, ...] = (SLICE_66,),
                 series_uid: str | None = None, reverse_names: bool = True, **overrides) -> list[tuple[str, bytes]]:
    """`n` slices, `step` mm apart, source slices repeated in turn; file names run against the
    positions (reverse_names) so that ordering by name would be wrong."""
    series_uid = series_uid or generate_uid()
    items = []
    for k in range(n):
        ds = pydicom.dcmread(sources[k % len(sources)])
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, round(100.0 + k * step, 3)]
        ds.SliceLocation = round(100.0 + k * step, 3)
        for key, value in overrides.items():
            setattr(ds, key, value)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        name = f"slice_{(n - k if reverse_names else k + 1):03d}.dcm"
        items.append((name, buf.getvalue()))
    return items
