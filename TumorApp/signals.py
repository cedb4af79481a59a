"""Receivers: log-ins, failed log-ins, log-outs and django-axes lockouts go to AuditEvent; a deleted
analysis (or corrected outline, or series job) takes its files with it; a finished series goes back
to the PACS with PACS_AUTO_SEND; a series queued from the PACS is retrieved before it is analysed."""
from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.conf import settings
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .series import services as series_services
from .analyses import services
from . import audit
from .models import Analysis, AuditEvent, MaskVersion, SeriesJob


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    audit.record_event(action=AuditEvent.Action.LOGIN, user=user, ip=audit.client_ip(request))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # credentials are already cleansed by Django (password masked); only the name is kept.
    audit.record_event(action=AuditEvent.Action.LOGIN_FAILED, username=str(credentials.get("username") or ""),
                          ip=audit.client_ip(request))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit.record_event(action=AuditEvent.Action.LOGOUT, user=user, ip=audit.client_ip(request))


@receiver(post_delete, sender=Analysis, dispatch_uid="analysis_files")
def _analysis_deleted(sender, instance, **kwargs):
    """Every deletion (page, API, admin, bulk, a deleted user's cascade) removes the files once
    committed, and is audited: by the service when it knows who did it, else here."""
    services.remove_files_on_commit(instance)
    if not getattr(instance, "_audited", False):
        audit.record_event(action=AuditEvent.Action.DELETE, username=_owner_name(instance),
                              analysis_id=instance.pk)


@receiver(post_delete, sender=MaskVersion, dispatch_uid="mask_version_files")
def _mask_version_deleted(sender, instance, **kwargs):
    """A corrected outline's masks and pictures go with it (with its analysis, or alone, e.g. pruned),
    except those its analysis or another version still shows: a correction's pictures include
    version 0's ("original", "probability", ...)."""
    services.remove_paths_on_commit(set(instance.paths()) - services.paths_in_use(instance.analysis_id))


@receiver(post_delete, sender=SeriesJob, dispatch_uid="series_job_files")
def _series_deleted(sender, instance, **kwargs):
    """As for analyses: however a series job is deleted (the service, a deleted user's cascade), its
    folder goes once committed, and the deletion is audited."""
    series_services.remove_folder_on_commit(instance)
    if not getattr(instance, "_audited", False):
        audit.record_event(action=AuditEvent.Action.SERIES_DELETE, username=_owner_name(instance),
                              detail=f"series {instance.pk}")


def _owner_name(analysis) -> str:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=analysis.owner_id).first()
    return user.get_username() if user is not None else ""
@receiver(user_locked_out, dispatch_uid="audit_lockout")
def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    # Sent by django-axes at the failure that locks the account and at each attempt during the lockout.
    audit.record_event(action=AuditEvent.Action.LOCKOUT, username=str(username or ""),
                          ip=ip_address or audit.client_ip(request))


@receiver(series_services.series_starting, dispatch_uid="pacs_retrieve")
def _series_starting(sender, job, **kwargs):
    if job.files.get("pacs"):  # queued by the PACS search page: the worker retrieves it first
        from .pacs.services import fetch_retrieve

        fetch_retrieve(job)


@receiver(series_services.series_done, dispatch_uid="pacs_auto_send")
def _series_done(sender, job, **kwargs):
    if settings.PACS_AUTO_SEND:
        from .pacs.services import auto_send

        auto_send(job)  # records its own success or failure; never raises for a PACS problem
