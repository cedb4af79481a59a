"""The audit trail every feature writes to: one row per action (AuditEvent), with the client's address."""
from __future__ import annotations

from .models import AuditEvent


def client_ip(request) -> str | None:
    """The peer address as the WSGI server saw it (no X-Forwarded-For: a client could forge it)."""
    return (request.META.get("REMOTE_ADDR") or None) if request is not None else None


def record_event(*, action: str, user=None, username: str = "", analysis_id: int | None = None,
                 ip: str | None = None, detail: str = "") -> AuditEvent:
    """Append one audit event; `username` defaults to the user's current name."""
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    name = username or (user.get_username() if user is not None else "")
    return AuditEvent.objects.create(user=user, username=name[:150], action=action,
                                     analysis_id=analysis_id, ip=ip or None, detail=detail[:255])
