"""`manage.py analyze`: the fixed CLI contract (JSON list, per-file errors, masks, exit status)."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from TumorApp.analysis.slice import pipeline

from .conftest import DICOM_66, JPEG_103, REPO, SEED_440, IntensitySegmenter
from .slice.test_pipeline import LESION_KEYS, RESULT_KEYS


@pytest.fixture(autouse=True)
def fake_network(monkeypatch):
    fake = IntensitySegmenter()
    monkeypatch.setattr(pipeline, "_default_segmenter", lambda: fake)
    return fake


def analyze_cmd(*args) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("analyze", *map(str, args), stdout=out, stderr=err)
        error = None
    except CommandError as exc:
        error = exc
    return out.getvalue(), err.getvalue(), error


def test_json_is_one_list_with_the_contract_keys():
    out, err, error = analyze_cmd(DICOM_66, SEED_440, "--json")
    assert error is None
    records = json.loads(out)
    assert [r["file"] for r in records] == [str(DICOM_66), str(SEED_440)]
    for record in records:
        assert set(record) == RESULT_KEYS | {"file"}
        for tumor in record["tumors"]:
            assert set(tumor) == LESION_KEYS
    assert records[0]["spacing_source"] == "dicom" and records[0]["pixel_spacing_mm"] == [0.57, 0.57]
    assert records[1]["spacing_source"] == "assumed"
    assert "2/2" in err  # progress bar on stderr


def test_a_failing_file_gives_an_error_object_and_exit_status_1(tmp_path):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(DICOM_66.read_bytes()[:5000])
    out, _, error = analyze_cmd(bad, JPEG_103, tmp_path / "missing.png", "--json")
    assert error is not None and error.returncode == 1
    records = json.loads(out)
    assert set(records[0]) == {"file", "error"} and records[0]["error"]
    assert "tumor_detected" in records[1]
    assert set(records[2]) == {"file", "error"}


def test_masks_out_writes_8_bit_masks_at_the_input_size(tmp_path):
    small = tmp_path / "small slice.png"
    grey = np.asarray(Image.open(JPEG_103).convert("L").resize((300, 200)))
    Image.fromarray(grey).save(small)
    out, _, error = analyze_cmd(DICOM_66, small, "--masks-out", tmp_path / "masks", "--json")
    assert error is None
    for stem, size in (("analysis_ircadb01_066", (512, 512)), ("small slice", (300, 200))):
        for kind in ("liver", "tumor"):
            image = Image.open(tmp_path / "masks" / f"{stem}_{kind}.png")
            assert image.mode == "L" and image.size == size
            assert set(np.unique(np.asarray(image))) <= {0, 255}


def test_pixel_spacing_option_is_used_for_files_without_spacing():
    out, _, error = analyze_cmd(SEED_440, "--pixel-spacing", "0.8", "--json")
    assert error is None
    (record,) = json.loads(out)
    assert record["spacing_source"] == "user" and record["pixel_spacing_mm"] == [0.8, 0.8]


def test_bad_pixel_spacing_is_a_command_error():
    _, _, error = analyze_cmd(SEED_440, "--pixel-spacing", "-2")
    assert error is not None and "pixel spacing" in str(error)


def test_plain_output_is_one_line_per_file():
    out, _, error = analyze_cmd(DICOM_66, SEED_440)
    assert error is None
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(str(DICOM_66))


def test_real_process_exit_status_is_1_when_a_file_fails(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a CT slice")
    proc = subprocess.run([sys.executable, "manage.py", "analyze", str(bad), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    (record,) = json.loads(proc.stdout)
    assert record["file"] == str(bad) and "not an image" in record["error"]
