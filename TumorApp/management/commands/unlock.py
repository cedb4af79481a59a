"""`manage.py unlock USERNAME`: lift a login lockout (django-axes) for that account, from every address; audited."""
from django.core.management.base import BaseCommand

from TumorApp.accounts.lockout import unlock


class Command(BaseCommand):
    help = "Unlock an account locked after too many failed log-ins (all addresses). Works for a locked-out admin."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        removed = unlock(username=username, by="manage.py unlock")
        if removed:
            self.stdout.write(f"Unlocked {username}: cleared {removed} failed-attempt record(s).")
        else:
            self.stdout.write(f"{username} was not locked (no failed attempts recorded).")
