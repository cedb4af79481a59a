"""`manage.py analyze_series PATH [--json] [--seg-out FILE]`: a whole CT series -> 3-D lesions.

PATH is a folder of DICOM files, a zip of them, or a NIfTI volume (.nii/.nii.gz).  With --json
it prints one JSON object (`SeriesResult.to_dict()`); bad input prints `{"error": ...}` and exits 1.
--seg-out writes the masks: a DICOM Segmentation for DICOM input, a NIfTI label volume for NIfTI.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.series.export import export_for
from TumorApp.analysis.series.volume import analyze_series


class Command(BaseCommand):
    help = "Segment liver and tumours on a whole CT series (DICOM folder/zip or NIfTI) and measure lesions in 3-D."

    def add_arguments(self, parser):
        parser.add_argument("path", metavar="PATH", help="a folder of DICOM files, a zip of them, or a .nii/.nii.gz")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--seg-out", metavar="FILE",
                            help="write the masks: DICOM-SEG for DICOM input, NIfTI labels (0/1/2) for NIfTI")
        parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")

    def handle(self, *args, **options):
        path = Path(options["path"])
        started = time.perf_counter()
        try:
            if not path.exists():
                raise InputError(f"{path} does not exist.")
            result = analyze_series(path, batch_size=max(1, options["batch_size"]),
                                    progress=None if options["json"] else self._progress)
            record, stage_label = result.to_dict(), result.stage_label
            if options["seg_out"]:
                # The SEG needs the headers and the labels only: let the CT go before the label
                # volume is made, and both masks after (1 GiB at the series voxel limit in all).
                result.volume = dataclasses.replace(result.volume, hu=np.empty((0, 0, 0), np.int16))
                volume, labels = result.volume, result.label_volume()
                del result
                blob, _ = export_for(volume, labels)
                del labels
                Path(options["seg_out"]).write_bytes(blob)
        except (InputError, OSError) as exc:
            message = str(exc) if isinstance(exc, InputError) else f"could not write {options['seg_out']}: {exc}"
            if options["json"]:
                self.stdout.write(json.dumps({"error": message}))
            else:
                self.stderr.write(f"error: {message}")
            sys.exit(1)
        if options["json"]:
            self.stdout.write(json.dumps(record, indent=2))
            return
        seconds = time.perf_counter() - started
        self.stdout.write(f"{record['slices']} slices ({seconds:.1f} s, {record['slices'] / seconds:.1f} slices/s), "
                          f"spacing {record['spacing_mm']} mm")
        self.stdout.write(f"liver {record['liver_volume_ml']} mL, tumour {record['tumor_volume_ml']} mL "
                          f"({record['tumor_burden_percent']} %), {stage_label}")
        for n, lesion in enumerate(record["lesions"], start=1):
            self.stdout.write(f"  lesion {n}: {lesion['volume_ml']} mL, longest {lesion['max_diameter_mm']} mm "
                              f"on slice {lesion['max_diameter_slice']}, slices {lesion['slice_range']}, "
                              f"{lesion['side']} {lesion['part']}")
        if options["seg_out"]:
            self.stdout.write(f"masks written to {options['seg_out']}")

    def _progress(self, done: int, total: int) -> None:
        self.stderr.write(f"\r{done}/{total} slices", ending="" if done < total else "\n")
