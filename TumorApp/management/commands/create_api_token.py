"""`manage.py create_api_token USERNAME [--name NAME]`: print a new personal API token (only the token) for scripts."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from TumorApp.accounts.tokens import create_token


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (it is stored hashed and cannot be shown again)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="command line", help="a name to tell the token apart (default: %(default)s)")

    def handle(self, *args, username, name, **options):
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"The account {username!r} is disabled.")
        _, token = create_token(user=user, name=name)
        self.stdout.write(token)
