"""`manage.py analyze FILE [FILE ...] [--json] [--masks-out DIR] [--pixel-spacing MM]`.

A fixed contract other tools depend on: with --json, one JSON list with one object per file
(`file` plus `AnalysisResult.to_dict()`, or `file` and `error`); a failing file does not stop the
others; exit status 1 if any file failed.  --masks-out writes DIR/<stem>_liver.png and
DIR/<stem>_tumor.png, 8-bit 0/255 at the input's exact size.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.slice.pipeline import AnalysisResult, analyze_many


class Command(BaseCommand):
    help = "Segment liver and tumours on CT slices (PNG/JPEG/DICOM) and report measurements."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE", help="CT slices: PNG, JPEG or DICOM")
        parser.add_argument("--json", action="store_true", help="print one JSON list, one object per file")
        parser.add_argument("--masks-out", metavar="DIR", help="write <stem>_liver.png and <stem>_tumor.png here")
        parser.add_argument("--pixel-spacing", metavar="MM", type=float,
                            help="pixel spacing in mm for files that do not state one (DICOM does)")
        parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")

    def handle(self, *args, **options):
        files: list[str] = options["files"]
        masks_out = Path(options["masks_out"]) if options["masks_out"] else None
        if masks_out is not None:
            masks_out.mkdir(parents=True, exist_ok=True)

        progress = _ProgressBar(self.stderr, len(files)) if len(files) > 1 else None
        try:
            outcomes = analyze_many(files, pixel_spacing=options["pixel_spacing"],
                                    batch_size=max(1, options["batch_size"]),
                                    progress=progress.update if progress else None)
        except InputError as exc:  # a bad --pixel-spacing concerns every file
            raise CommandError(str(exc)) from exc
        except FileNotFoundError as exc:  # model weights missing
            raise CommandError(str(exc)) from exc
        if progress:
            progress.finish()

        records, failed = [], 0
        for name, outcome in zip(files, outcomes):
            if isinstance(outcome, AnalysisResult):
                record = {"file": name, **outcome.to_dict()}
                if masks_out is not None:
                    try:
                        _write_masks(masks_out, name, outcome)
                    except OSError as exc:
                        record = {"file": name, "error": f"could not write masks: {exc}"}
            else:
                record = {"file": name, "error": str(outcome)}
            failed += "error" in record
            records.append(record)

        if options["json"]:
            self.stdout.write(json.dumps(records, indent=2))
        else:
            for record in records:
                self.stdout.write(_summary(record))

        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) could not be analysed.", returncode=1)


def _write_masks(directory: Path, name: str, result: AnalysisResult) -> None:
    from PIL import Image

    stem = Path(name).stem
    Image.fromarray(result.liver_mask).save(directory / f"{stem}_liver.png")
    Image.fromarray(result.tumor_mask).save(directory / f"{stem}_tumor.png")


def _summary(record: dict) -> str:
    if "error" in record:
        return f"{record['file']}: ERROR {record['error']}"
    warnings = "".join(f" [warning: {w}]" for w in record["warnings"])
    if record["inconclusive"]:
        return f"{record['file']}: Inconclusive: no liver found on this slice{warnings}"
    sure = f"confidence {record['confidence']:.2f}" + (" (low)" if record["low_confidence"] else "")
    if not record["tumor_detected"]:
        return f"{record['file']}: No Tumor Detected (liver {record['liver_area_px']} px), {sure}{warnings}"
    largest = max(t["max_diameter_mm"] for t in record["tumors"])
    return (f"{record['file']}: stage {record['stage']} (size-based estimate, not a clinical stage), "
            f"{len(record['tumors'])} lesion(s), largest {largest:.1f} mm, "
            f"{record['affected_percent']:.2f}% of liver, spacing {record['spacing_source']}, {sure}{warnings}")


class _ProgressBar:
    """A one-line text progress bar on stderr."""

    def __init__(self, stream, total: int, width: int = 30):
        self.stream, self.total, self.width = stream, total, width

    def update(self, done: int, total: int) -> None:
        filled = int(self.width * done / max(total, 1))
        self.stream.write(f"\ranalyze [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}",
                          ending="")
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("")

