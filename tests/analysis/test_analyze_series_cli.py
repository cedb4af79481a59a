"""`manage.py analyze_series`: the JSON contract, --seg-out, and exit 1 with {"error"} on bad input (real processes)."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pydicom
import pytest

from .conftest import REPO
from .series_fixtures import dicom_series

CONTRACT_KEYS = {"slices", "spacing_mm", "liver_volume_ml", "tumor_volume_ml", "tumor_burden_percent", "stage",
                 "inconclusive", "lesions"}


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "analyze_series", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_folder_to_json_and_dicom_seg(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    for name, data in dicom_series(3):
        (folder / name).write_bytes(data)
    seg = tmp_path / "seg.dcm"
    proc = run(folder, "--json", "--seg-out", seg)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert set(record) == CONTRACT_KEYS
    assert record["slices"] == 3 and record["spacing_mm"] == [1.6, 0.57, 0.57]
    assert record["lesions"] and record["lesions"][0]["slice_range"] == [0, 2]
    assert pydicom.dcmread(seg).Modality == "SEG"


@pytest.mark.parametrize("make", ["gap", "missing", "text"])
def test_bad_input_prints_an_error_object_and_exits_1(tmp_path, make):
    if make == "gap":
        path = tmp_path / "gap.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in [item for k, item in enumerate(dicom_series(4)) if k != 1]:
                archive.writestr(name, data)
    elif make == "missing":
        path = tmp_path / "nowhere"
    else:
        path = tmp_path / "notes.txt"
        path.write_text("not a series")
    proc = run(path, "--json")
    assert proc.returncode == 1
    assert set(json.loads(proc.stdout)) == {"error"}
    assert "Traceback" not in proc.stderr
