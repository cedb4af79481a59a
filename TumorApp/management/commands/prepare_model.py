"""`manage.py prepare_model`: build the cached inference graph (ONNX export; int8 quantisation when chosen) before serving.

run.sh calls this, so the one-off ~30 s of export and quantisation happen before the server says it is
serving, not during the first user's upload. Prints one progress line.
"""
import logging
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Export the network to ONNX (and quantise it to int8 with INFERENCE_BACKEND=onnx-int8), cached per "
            "weights file, so the first upload is fast.")

    def add_arguments(self, parser):
        parser.add_argument("--strict", action="store_true",
                            help="exit with an error when the graphs cannot be prepared (default: warn and go on)")

    def handle(self, *args, strict=False, **options):
        from TumorApp.analysis.runtime import Segmenter

        # One progress line: the export/quantisation log lines would break it.
        logging.getLogger("TumorApp.analysis").setLevel(logging.WARNING)
        self.stdout.write("Preparing the inference graph (first run only: ONNX export, 0.5-2 minutes) ... ",
                          ending="")
        self.stdout.flush()
        started = time.perf_counter()
        try:
            segmenter = Segmenter()  # exports/quantises into the cache when missing, then loads the graph
        except Exception as exc:
            self.stdout.write("failed.")
            if strict:
                raise
            self.stderr.write(f"Could not prepare the network ({exc}); the server starts anyway and "
                              "every analysis will report the error.")
            return
        self.stdout.write(f"ready in {time.perf_counter() - started:.1f} s ({segmenter.backend}).")
