"""Helpers for the web tests: real CT slice uploads and the JSON contract's keys."""
from __future__ import annotations

from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

PNG_TUMOR = "web_seed_440.png"
PNG_PLAIN = "web_seed_380.png"
DICOM = "web_ircadb01_image_84.dcm"
PASSWORD = "Liver-Scan-Review-42"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


RESULT_KEYS = {"tumor_detected", "stage", "affected_percent", "liver_area_px", "tumor_area_px",
               "pixel_spacing_mm", "spacing_source", "tumors", "notes", "warnings",
               "inconclusive", "confidence", "low_confidence"}  # issue 9: unsure / odd input
LESION_KEYS = {"area_px", "area_mm2", "perimeter_px", "perimeter_mm", "eccentricity", "max_diameter_mm",
               "bbox", "centroid", "side", "part", "confidence", "low_confidence"}


def upload(fixture: str = PNG_TUMOR, *, name: str | None = None, data: bytes | None = None,
           content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name or fixture, fixture_bytes(fixture) if data is None else data,
                              content_type=content_type)


def make_analysis(user, fixture: str = PNG_TUMOR, **kwargs):
    from TumorApp.services import create_analysis

    return create_analysis(user=user, upload=upload(fixture), **kwargs)


def stored_files(media_root) -> list:
    return sorted(p for p in media_root.rglob("*") if p.is_file()) if media_root.exists() else []
