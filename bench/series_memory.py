"""Peak memory (RSS) of a DICOM series right at the voxel limit, through the app's own paths.

    .venv/bin/python bench/series_memory.py [--slices N] [--data ../shared/data] [--skip-zip] [--skip-cli]

The series: `MAX_SERIES_VOXELS // (512 * 512)` slices (853), 512 x 512 int16, written as DICOM
files from 3D-IRCADb-01's real slices run forwards and back again (so neighbours stay neighbours)
with even positions; the committed fixture slices when `--data` has no `ircadb-01/volume.npz`.
Each step runs in a fresh process, and its peak RSS is that process's own (`wait4` rusage):

- check: `volume.check_series` on the folder (the upload check, headers and three slices);
- submit: `series_services.submit_series` as the web calls it (check, then storing the files),
  with a temporary SQLite database and media folder;
- worker: `manage.py series_worker --once` runs that job (the whole `analyze_series`, then the
  stored CT and label volumes);
- export: the first download's DICOM-SEG (`series_services.export_file`, in the web process);
- cli: `manage.py analyze_series FOLDER --json --seg-out FILE`.

With a zip of the same files (as an upload may be), check and submit run again on the zip (the
worker reads it one member at a time, as it reads the files).
The inference backend is the series default of this checkout (`SERIES_INFERENCE_BACKEND`, else
var/inference-choice.json, else `runtime.SERIES_DEFAULT_BACKEND`); the script prints which ran.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from _common import DICOM_SLICES, REPO, machine, write_ct_slice

import numpy as np  # noqa: E402

GOAL_MIB = 1536

DJANGO = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")
django.setup()
"""

SUBMIT = DJANGO + """
from django.contrib.auth import get_user_model
from django.core.files import File
from TumorApp.series.services import submit_series
import sys
from pathlib import Path
paths = sorted(Path(p) for p in sys.argv[1:])
user, _ = get_user_model().objects.get_or_create(username="bench")
handles = [open(p, "rb") for p in paths]
job = submit_series(user=user, uploads=[File(h, name=p.name) for h, p in zip(handles, paths)])
print("job", job.pk, job.kind, job.progress_total)
"""

EXPORT = DJANGO + """
import sys
from TumorApp.models import SeriesJob
from TumorApp.series.services import export_file
job = SeriesJob.objects.get(pk=int(sys.argv[1]))
print("job", job.pk, job.status, job.error or "", "labels", job.files.get("labels"))
data, name, _ = export_file(job)
print(name, len(data), "bytes")
"""


def write_series(out: Path, slices: int, data: Path) -> None:
    """`slices` DICOM files of 512 x 512 int16 in `out`, positions `step` apart along z."""
    import pydicom
    from pydicom.uid import generate_uid

    npz = data / "ircadb-01" / "volume.npz"
    if npz.is_file():
        volume = np.load(npz)
        ct, step = volume["ct"], float(volume["spacing"][0])
    else:
        ct = np.stack([pydicom.dcmread(p).pixel_array for p in DICOM_SLICES]).astype(np.int16)
        step = 1.6
    # Forwards, then backwards, and so on: every slice's neighbours are real neighbours.
    cycle = np.concatenate([np.arange(len(ct)), np.arange(len(ct) - 2, 0, -1)]) if len(ct) > 1 else np.zeros(1, int)
    template = pydicom.dcmread(DICOM_SLICES[0])
    series_uid = generate_uid()
    for k in range(slices):
        write_ct_slice(template, series_uid, k, step, ct[cycle[k % len(cycle)]], out / f"{k:04d}.dcm")


def measured(label: str, argv: list[str], env: dict, log: Path) -> str:
    """Run `argv` as a fresh process; print its wall time and its own peak RSS; return its stdout."""
    with open(log, "w") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
    text = log.read_text()
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    verdict = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    print(f"{label:<28}{seconds:>8.1f} s{peak:>9.0f} MiB  {'under' if peak < GOAL_MIB else 'OVER'} 1.5 GiB  {verdict}",
          flush=True)
    if proc.returncode != 0:
        print("  " + text[-1500:].replace("\n", "\n  "))
    return text


def main() -> None:
    from TumorApp.analysis.io.series_input import MAX_SERIES_VOXELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=MAX_SERIES_VOXELS // (512 * 512),
                        help="slices of 512 x 512 (default: as many as the voxel limit allows)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--skip-zip", action="store_true", help="leave out the zipped upload")
    parser.add_argument("--skip-cli", action="store_true", help="leave out manage.py analyze_series")
    args = parser.parse_args()
    from TumorApp.analysis.model.runtime import series_backend_from_env

    print(f"machine: {machine()}")
    print(f"series backend: {series_backend_from_env()}")
    tmp = Path(tempfile.mkdtemp(prefix="tumor-series-memory-"))
    try:
        folder = tmp / "series"
        folder.mkdir()
        t = time.perf_counter()
        write_series(folder, args.slices, args.data)
        files = sorted(folder.iterdir())
        size = sum(p.stat().st_size for p in files)
        print(f"series: {len(files)} slices of 512 x 512 = {len(files) * 512 * 512 / 1e6:.1f} M voxels "
              f"(limit {MAX_SERIES_VOXELS / 1e6:.1f} M), {size / 2**20:.0f} MiB of DICOM, written in "
              f"{time.perf_counter() - t:.0f} s")
        uploads = {"files": [str(p) for p in files]}
        if not args.skip_zip:
            archive = tmp / "series.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
                for p in files:
                    z.write(p, f"series/{p.name}")
            print(f"zip: {archive.stat().st_size / 2**20:.0f} MiB (deflated)")
            uploads["zip"] = [str(archive)]

        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "MEDIA_ROOT": str(tmp / "media"),
               "PYTHONPATH": str(REPO)}
        python, manage = sys.executable, str(REPO / "manage.py")
        subprocess.run([python, manage, "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
        print(f"\n{'step':<28}{'wall':>10}{'peak RSS':>13}")
        for kind, paths in uploads.items():
            measured(f"check ({kind})", [python, "-c", "import sys; from pathlib import Path; "
                                         "from TumorApp.analysis.series.volume import check_series; "
                                         "print(check_series(Path(sys.argv[1])))",
                                         str(folder) if kind == "files" else paths[0]], env, tmp / "check.log")
            out = measured(f"submit ({kind}, web)", [python, "-c", SUBMIT, *paths], env,
                           tmp / "submit.log")
            job = out.split("job", 1)[1].split()[0] if "job" in out else None
            if job is None or kind == "zip":  # the zip differs in reading only: check and submit
                continue
            measured(f"worker ({kind})", [python, manage, "series_worker", "--once"], env, tmp / "worker.log")
            out = measured(f"export DICOM-SEG ({kind})", [python, "-c", EXPORT, job], env,
                           tmp / "export.log")
            print("  " + out.strip().replace("\n", "\n  "))
        if not args.skip_cli:
            out = measured("manage.py analyze_series", [python, manage, "analyze_series", str(folder), "--json",
                                                        "--seg-out", str(tmp / "seg.dcm")], env, tmp / "cli.log")
            if '"liver_volume_ml"' in out:
                import json

                record = json.loads(out[out.index("{"):])
                print(f"  liver {record['liver_volume_ml']} mL, tumour {record['tumor_volume_ml']} mL, "
                      f"{len(record['lesions'])} lesions, stage {record['stage']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
