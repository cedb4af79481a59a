"""`manage.py ensure_admin`: first-run default account admin/admin, only when no user exists."""
from django.core.management.base import BaseCommand

from TumorApp.accounts.services import ensure_default_admin


class Command(BaseCommand):
    help = "Create the default admin/admin account (must change password at first login) if no user exists."

    def handle(self, *args, **options):
        if ensure_default_admin():
            self.stdout.write(self.style.WARNING(
                "Created the default account admin/admin; you must change its password at first login."))
        else:
            self.stdout.write("Users already exist; no default account created.")
