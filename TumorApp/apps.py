"""App config for TumorApp: the web front end of the liver tumour analysis."""
from django.apps import AppConfig


class TumorAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "TumorApp"
    verbose_name = "Liver tumour analysis"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers the system checks and the audit receivers)
