"""manage.py export_corrections OUT_DIR: corrected analyses as training data."""
from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = ("Write every corrected analysis (the slice in HU where the upload had HU, labels 0/1/2 from "
            "its latest correction, spacing, source id) to OUT_DIR as analysis-<id>.npz plus "
            "manifest.json; TumorApp/training/corrections.py reads that folder.")

    def add_arguments(self, parser):
        parser.add_argument("out_dir")

    def handle(self, *args, **options):
        from TumorApp.correction_export import export_corrections

        manifest = export_corrections(options["out_dir"])
        hu = sum(1 for m in manifest if m["is_hu"])
        self.stdout.write(f"Exported {len(manifest)} corrected analyses ({hu} in HU) to {options['out_dir']}")
