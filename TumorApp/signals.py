"""Audit receivers for Django's auth signals and django-axes: log-ins, failed log-ins, log-outs, lockouts."""
from __future__ import annotations

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from . import services
from .models import AuditEvent


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    services.record_event(action=AuditEvent.Action.LOGIN, user=user, ip=services.client_ip(request))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    # credentials are already cleansed by Django (password masked); only the name is kept.
    services.record_event(action=AuditEvent.Action.LOGIN_FAILED, username=str(credentials.get("username") or ""),
                          ip=services.client_ip(request))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        services.record_event(action=AuditEvent.Action.LOGOUT, user=user, ip=services.client_ip(request))


@receiver(user_locked_out, dispatch_uid="audit_lockout")
def _locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    # Sent by django-axes at the failure that locks the account and at each attempt during the lockout.
    services.record_event(action=AuditEvent.Action.LOCKOUT, username=str(username or ""),
                          ip=ip_address or services.client_ip(request))
