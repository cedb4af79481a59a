"""ASGI entry point (unused by run.sh; kept for completeness)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")
application = get_asgi_application()
