"""Hostile label volumes through the series label reader: status, seconds and peak RSS, each in a
fresh process.

    .venv/bin/python bench/label_doors.py

A DICOM series of 64 slices of 512 x 512 (the committed IRCADb slice, `_common.write_ct_slice`) is
the target; each hostile file below goes through `series.correct.labels_from_upload` against its
geometry (what PUT /api/series/<id>/labels/ runs) in a child process whose peak RSS (VmHWM) is
printed beside the baseline of a valid SEG and a valid NIfTI.  Prints figures; asserts nothing
(tests/web/series/test_label_doors.py does).
"""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DICOM_SLICES, REPO, machine, write_ct_slice

SLICES = 64


def build(folder: Path) -> dict[str, Path]:
    """The series and the label files, written once."""
    import nibabel as nib
    import numpy as np
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    from TumorApp.analysis.series.correct import labels_to_nifti
    from TumorApp.analysis.series.export import dicom_seg
    from TumorApp.analysis.series.volume import load_series

    template = pydicom.dcmread(DICOM_SLICES[0])
    plane = template.pixel_array.astype(np.int16) + int(template.RescaleIntercept)
    series = folder / "series"
    series.mkdir()
    uid = generate_uid()
    for k in range(SLICES):
        write_ct_slice(template, uid, k, 1.6, plane, series / f"{k:03d}.dcm")
    volume = load_series(series)
    labels = np.zeros(volume.hu.shape, np.uint8)
    labels[:, 150:350, 100:300] = 1
    labels[:, 200:260, 150:210] = 2
    files = {}

    def put(name: str, blob: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(blob)

    seg = dicom_seg(volume, labels)
    put("valid.seg.dcm", seg)
    put("valid.nii.gz", labels_to_nifti(volume, labels))
    ds = pydicom.dcmread(io.BytesIO(seg))
    for name, frames in (("billion-frames.seg.dcm", 10**9), ("ten-million-frames.seg.dcm", 10**7), ("two-frames.seg.dcm", 2)):
        ds.NumberOfFrames = frames
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        put(name, buf.getvalue())
    ds = pydicom.dcmread(io.BytesIO(seg))
    ds.PixelData = bytes(1200 * 2**20)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    put("deflate-bomb.seg.dcm", buf.getvalue())
    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, 8000))
    header.set_data_dtype(np.uint8)
    affine = np.diag([1.0, -1.0, -1.0, 1.0])
    header.set_qform(affine, 1)
    header.set_sform(affine, 1)
    header["vox_offset"] = 352
    put("huge-flipped.nii.gz", gzip.compress(header.binaryblock + b"\0" * 4))
    whole = gzip.decompress(labels_to_nifti(volume, labels))
    put("truncated.nii.gz", gzip.compress(whole[:len(whole) // 2]))
    return {"series": series, **files}


CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")
django.setup()
import numpy as np
from TumorApp.analysis.errors import InputError
from TumorApp.analysis.series.correct import labels_from_upload
from TumorApp.analysis.series.volume import load_series
volume = load_series(sys.argv[2])
volume = type(volume)(hu=np.zeros(volume.hu.shape, np.int16), spacing_mm=volume.spacing_mm, kind=volume.kind,
                      datasets=volume.datasets, flips=volume.flips)
def hwm():  # this process's peak RSS in MiB (VmHWM: reset at exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
before = hwm()
data = open(sys.argv[3], "rb").read()
started = time.perf_counter()
try:
    labels_from_upload(data, volume, name=os.path.basename(sys.argv[3]))
    status = "accepted"
except InputError as exc:
    status = "refused: " + str(exc)[:90]
print(json.dumps({"status": status, "seconds": time.perf_counter() - started, "before_mib": before,
                  "peak_mib": hwm()}))
"""


def main() -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        files = build(Path(tmp))
        series = files.pop("series")
        print(f"series: {SLICES} slices of 512 x 512")
        print(f"{'file':28s} {'size':>9s} {'seconds':>8s} {'peak MiB':>9s}  outcome")
        for name, path in files.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), str(series), str(path)],
                                 capture_output=True, text=True, cwd=REPO)
            if out.returncode:
                print(f"{name:28s} crashed: {out.stderr[-300:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{name:28s} {path.stat().st_size:9,d} {r['seconds']:8.2f} {r['peak_mib']:9.0f}  "
                  f"{r['status']}  (process before reading: {r['before_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
