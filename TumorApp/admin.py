"""Admin views of analyses (read-mostly), account flags, API tokens, corrected outlines and the audit
trail; unlocking users.

Deleting an analysis or a series job here, one or in bulk, or deleting a user, goes through the same
service as the pages: the files are removed and the deletion is audited under the admin's name.
"""
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from .accounts import lockout
from .series import services as series_services
from .analyses import services
from . import audit
from .models import AccountFlags, Analysis, ApiToken, AuditEvent, MaskVersion, PacsTransfer, SeriesJob, SeriesVersion

User = get_user_model()


def _delete_analyses(request, analyses) -> None:
    for analysis in analyses:
        services.delete_analysis(analysis=analysis, actor=request.user, ip=audit.client_ip(request))


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "created_at", "original_name", "tumor_detected", "stage", "affected_percent")
    list_filter = ("tumor_detected", "stage", "spacing_source")
    search_fields = ("original_name", "owner__username")
    readonly_fields = [f.name for f in Analysis._meta.fields]

    def has_add_permission(self, request):
        return False

    def delete_model(self, request, obj):
        _delete_analyses(request, [obj])

    def delete_queryset(self, request, queryset):
        _delete_analyses(request, queryset.select_related("owner"))


@admin.register(AccountFlags)
class AccountFlagsAdmin(admin.ModelAdmin):
    list_display = ("user", "must_change_password")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the trail is written by the application, never edited by hand."""

    list_display = ("timestamp", "username", "action", "analysis_id", "ip", "detail")
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


@admin.register(MaskVersion)
class MaskVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are written by the outline editor and the API, never edited by hand."""

    list_display = ("analysis", "number", "created_by_name", "created_at")
    search_fields = ("created_by_name",)
    readonly_fields = [f.name for f in MaskVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SeriesVersion)
class SeriesVersionAdmin(admin.ModelAdmin):
    """Read-only, as MaskVersion: series versions are written by the series editor and the API."""

    list_display = ("job", "number", "created_by_name", "created_at")
    search_fields = ("created_by_name",)
    readonly_fields = [f.name for f in SeriesVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
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

    def has_delete_permission(self, request, obj=None):
        # A running job is refused by the service; the admin then offers no delete button for it.
        return super().has_delete_permission(request, obj) and (obj is None or obj.status != SeriesJob.Status.RUNNING)

    def delete_model(self, request, obj):
        self.delete_queryset(request, [obj])

    def delete_queryset(self, request, queryset):
        for job in queryset:
            try:
                series_services.delete_series(job=job, actor=request.user, ip=audit.client_ip(request))
            except series_services.SeriesRunning as e:  # a bulk delete with running jobs; or claimed just now
                self.message_user(request, f"Not deleted: {e}", messages.WARNING)


@admin.register(PacsTransfer)
class PacsTransferAdmin(admin.ModelAdmin):
    """Retrieves from, sends to and receipts over DICOM for each series: read-only, as the audit trail."""

    list_display = ("id", "created_at", "job", "user", "direction", "status", "series_instance_uid", "error")
    list_filter = ("direction", "status")
    readonly_fields = [f.name for f in PacsTransfer._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Staff see who has which tokens; tokens are made and revoked by their owner (profile page or command)."""

    list_display = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = [f.name for f in ApiToken._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.action(description="Unlock the selected users (clear failed log-ins)")
def unlock_users(modeladmin, request, queryset):
    names = []
    for user in queryset:
        lockout.unlock(username=user.get_username(), by=request.user.get_username(),
                       ip=audit.client_ip(request))
        names.append(user.get_username())
    modeladmin.message_user(request, f"Unlocked: {', '.join(names)}.", messages.SUCCESS)


if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class TumorUserAdmin(UserAdmin):
    """Django's user admin plus the unlock action; deleting a user deletes their analyses through
    the service first (files removed, deletions audited)."""

    actions = [unlock_users]

    def delete_model(self, request, obj):
        _delete_analyses(request, Analysis.objects.filter(owner=obj).select_related("owner"))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        _delete_analyses(request, Analysis.objects.filter(owner__in=queryset).select_related("owner"))
        super().delete_queryset(request, queryset)
