"""manage.py export_corrections OUT_DIR: corrected analyses as training data."""
from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Write every corrected analysis (the slice in HU where the upload had HU, labels 0/1/2 from "
            "its latest correction, spacing, source id) to OUT_DIR as analysis-<id>.npz, every corrected "
            "series (its corrected slices in HU with their labels) as series-<id>.npz, plus "
            "manifest.json; TumorApp/training/corrections.py reads that folder.")

    def add_arguments(self, parser):
        parser.add_argument("out_dir")

    def handle(self, *args, **options):
        from TumorApp.corrections.export import export_corrections

        manifest = export_corrections(options["out_dir"])
        series = [m for m in manifest if m.get("kind") == "series"]
        slices = [m for m in manifest if m.get("kind") != "series"]
        hu = sum(1 for m in slices if m["is_hu"])
        self.stdout.write(f"Exported {len(slices)} corrected analyses ({hu} in HU) and {len(series)} corrected "
                          f"series ({sum(len(m['slices']) for m in series)} slices) to {options['out_dir']}")
