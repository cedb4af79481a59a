"""Admin views of analyses (read-mostly) and account flags, for the administrator.

Deleting an analysis here, one or in bulk, or deleting a user, goes through the same service as
the pages: the files are removed and the deletion is audited under the admin's name.
"""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from . import services
from .models import AccountFlags, Analysis, AuditEvent, MaskVersion


def _delete_analyses(request, analyses) -> None:
    for analysis in analyses:
        services.delete_analysis(analysis=analysis, actor=request.user, ip=services.client_ip(request))


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
User = get_user_model()
if admin.site.is_registered(User) and isinstance(admin.site._registry[User], UserAdmin):
    class AuditedUserAdmin(type(admin.site._registry[User])):
        """Deleting a user deletes their analyses through the service first (files, audit)."""

        def delete_model(self, request, obj):
            _delete_analyses(request, Analysis.objects.filter(owner=obj).select_related("owner"))
            super().delete_model(request, obj)

        def delete_queryset(self, request, queryset):
            _delete_analyses(request, Analysis.objects.filter(owner__in=queryset).select_related("owner"))
            super().delete_queryset(request, queryset)

    admin.site.unregister(User)
    admin.site.register(User, AuditedUserAdmin)
