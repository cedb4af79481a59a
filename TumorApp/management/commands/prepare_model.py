"""`manage.py prepare_model`: build the cached inference graphs before serving: the ONNX export, and
the int8 quantisation the series worker runs (and single slices, when chosen).

run.sh calls this, so the one-off ~30 s of export and quantisation happen before the server says it is
serving, not during the first user's upload or series. Prints one progress line.
"""
import logging
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Export the network to ONNX and quantise it to int8 (the backends INFERENCE_BACKEND and "
            "SERIES_INFERENCE_BACKEND choose), cached per weights file, so the first upload and series are fast.")

    def add_arguments(self, parser):
        parser.add_argument("--strict", action="store_true",
                            help="exit with an error when the graphs cannot be prepared (default: warn and go on)")

    def handle(self, *args, strict=False, **options):
        from TumorApp.analysis.runtime import Segmenter, backend_from_env, series_backend_from_env

        # One progress line: the export/quantisation log lines would break it.
        logging.getLogger("TumorApp.analysis").setLevel(logging.WARNING)
        self.stdout.write("Preparing the inference graphs (first run only: ONNX export and int8, 0.5-2 minutes) ... ",
                          ending="")
        self.stdout.flush()
        started = time.perf_counter()
        try:
            # Each exports/quantises into the cache when missing, then loads its graph.
            ready = [Segmenter(backend=b).backend for b in dict.fromkeys([backend_from_env(), series_backend_from_env()])]
        except Exception as exc:
            self.stdout.write("failed.")
            if strict:
                raise
            self.stderr.write(f"Could not prepare the network ({exc}); the server starts anyway and "
                              "every analysis will report the error.")
            return
        self.stdout.write(f"ready in {time.perf_counter() - started:.1f} s "
                          f"(slices: {ready[0]}, series: {ready[-1]}).")
