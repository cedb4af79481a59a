"""Account reads: the first-login flag, the audit trail."""
from __future__ import annotations

from ..models import AccountFlags, AuditEvent


def must_change_password(user) -> bool:
    if not user.is_authenticated:
        return False
    return AccountFlags.objects.filter(user=user, must_change_password=True).exists()


def audit_events():
    """The audit trail, newest first, for the staff-only audit page."""
    return AuditEvent.objects.all()
