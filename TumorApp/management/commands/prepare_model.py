"""`manage.py prepare_model`: before serving, build the cached inference graphs and choose the backends.

run.sh calls this.  It measures every backend that starts on this machine (once per weights file,
runtime versions and CPU; `backend_trial.py`), keeps those whose masks match fp32 ONNX Runtime,
records the fastest for single slices and for series in var/, then loads the backends that will
run, so the one-off export and quantisation never happen during a user's upload.  Prints one line.
"""
import logging
import os

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Measure the inference backends on this machine (first run for these weights, runtimes and CPU), "
            "record the fastest that match fp32 for slices and for series, and prepare their graphs.")

    def add_arguments(self, parser):
        parser.add_argument("--strict", action="store_true",
                            help="exit with an error when the graphs cannot be prepared (default: warn and go on)")
        parser.add_argument("--remeasure", action="store_true", help="measure again even when a record matches")
        parser.add_argument("--check-slices", type=int, default=None,
                            help="calibration slices to check each backend on (default: all)")
        parser.add_argument("--repeats", type=int, default=None, help="timed passes per backend and batch size")
        parser.add_argument("--figures", action="store_true",
                            help="after the line, print every backend's figures as a Markdown table")

    def handle(self, *args, strict=False, remeasure=False, check_slices=None, repeats=None, figures=False,
               **options):
        from TumorApp.analysis import backend_trial
        from TumorApp.analysis.model.backend_choice import record_path
        from TumorApp.analysis.model.runtime import Segmenter, backend_from_env, series_backend_from_env

        # One line: the export/quantisation log lines would break it.
        logging.getLogger("TumorApp.analysis").setLevel(logging.WARNING)
        try:
            record, measured = backend_trial.prepare(
                check_slices=check_slices, repeats=repeats or backend_trial.DEFAULT_REPEATS, remeasure=remeasure)
        except Exception as exc:  # no choice: the defaults (or the settings) run, as before this existed
            if strict:
                raise
            record, measured = None, f"not measured ({type(exc).__name__}: {exc})"
        try:
            # What will run (a setting wins over the record); built here so that their graphs exist.
            wanted = {"slices": backend_from_env(), "series": series_backend_from_env()}
            started = {b: Segmenter(backend=b).backend for b in dict.fromkeys(wanted.values())}
            ready = {kind: started[b] for kind, b in wanted.items()}
        except Exception as exc:
            if strict:
                raise
            self.stderr.write(f"inference: could not prepare the network ({exc}); the server starts anyway "
                              "and every analysis will report the error.")
            return
        self.stdout.write(summary(record, ready, measured, str(record_path())))
        if figures and record:
            self.stdout.write(table(record))


def summary(record: dict | None, ready: dict[str, str], measured: bool | str, where: str) -> str:
    """`inference: slices onnx-int8 (12.8 ms/pass), series openvino-int8 (33.1 slices/s); kept 4 of 4
    backends; measured now` -- with the setting's name instead of a figure when one overrides.
    `measured` is True / False (reused), or why nothing was measured (then `record` is None)."""
    if record is None:
        return f"inference: slices {ready['slices']}, series {ready['series']}; {measured}"
    figures = record.get("figures", {})

    def part(kind: str, variable: str, unit: str, key: str) -> str:
        name = ready[kind]
        if os.environ.get(variable, "").strip():
            return f"{kind} {name} (set by {variable})"
        if name in figures:
            return f"{kind} {name} ({figures[name][key]:g} {unit})"
        return f"{kind} {name}"

    return (f"inference: {part('slices', 'INFERENCE_BACKEND', 'ms/pass', 'ms_per_pass')}, "
            f"{part('series', 'SERIES_INFERENCE_BACKEND', 'slices/s', 'slices_per_s')}; "
            f"kept {len(record.get('kept', []))} of {len(figures)} backends; "
            + ("measured now" if measured else f"reused the record of {record.get('measured_at', '?')} ({where})")
            + (f" under load (load average {record['under_load']:g} on {os.cpu_count()} cores): measured again at "
               "the next quiet start" if record.get("under_load") else ""))


def table(record: dict) -> str:
    """Every measured backend's figures, for bench/README.md."""
    rows = ["| backend | liver Dice | tumour Dice | stage changes | ms/pass (batch 1) | slices/s (batch 16) | kept |",
            "|---|---:|---:|---:|---:|---:|---|"]
    for name, f in record["figures"].items():
        rows.append(f"| {name} | {f['liver_dice']:.4f} | {f['tumor_dice']:.4f} | {f['stage_changes']} | "
                    f"{f['ms_per_pass']:.1f} | {f['slices_per_s']:.1f} | {'yes' if f['kept'] else 'no'} |")
    rows += [f"| {name} | not available: {why} | | | | | |" for name, why in record.get("unavailable", {}).items()]
    return "\n".join(rows) + f"\n{record['check_slices']} check slices, {record['repeats']} timed passes, " \
        f"measured {record['measured_at']}"
