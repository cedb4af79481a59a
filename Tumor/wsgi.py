"""WSGI entry point (served by waitress from run.sh / run.bat)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "Tumor.settings")
application = get_wsgi_application()
