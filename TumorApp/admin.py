"""Admin views of analyses (read-mostly) and account flags, for the administrator."""
from django.contrib import admin

from .models import AccountFlags, Analysis, AuditEvent, SeriesJob


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "created_at", "original_name", "tumor_detected", "stage", "affected_percent")
    list_filter = ("tumor_detected", "stage", "spacing_source")
    search_fields = ("original_name", "owner__username")
    readonly_fields = [f.name for f in Analysis._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AccountFlags)
class AccountFlagsAdmin(admin.ModelAdmin):
    list_display = ("user", "must_change_password")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by the application, never edited by hand."""

    list_display = ("timestamp", "username", "action", "analysis_id", "ip")
    list_filter = ("action",)
    search_fields = ("username", "ip")
    date_hierarchy = "timestamp"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SeriesJob)
class SeriesJobAdmin(admin.ModelAdmin):
    """Whole-series jobs: staff can see the queue (status, progress, worker, errors); the worker writes them."""

    list_display = ("id", "created_at", "owner", "name", "kind", "status", "progress_done", "progress_total",
                    "attempts", "claimed_by")
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in SeriesJob._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
