"""`manage.py clean_media [--min-age-minutes 60]`: delete stored files that no analysis refers to."""
from django.core.management.base import BaseCommand

from TumorApp.analyses.services import remove_orphan_files


class Command(BaseCommand):
    help = "Delete upload/result files without an analysis row (left by a server killed mid-request)."

    def add_arguments(self, parser):
        parser.add_argument("--min-age-minutes", type=float, default=60,
                            help="keep files younger than this: they may belong to a request in flight (default 60)")

    def handle(self, *args, **options):
        removed = remove_orphan_files(older_than_s=options["min_age_minutes"] * 60)
        self.stdout.write(f"removed {len(removed)} orphan file(s)")
