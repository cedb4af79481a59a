"""Account writes: profile changes and the first-run admin."""
from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import transaction

from ..audit import record_event
from ..models import AccountFlags, AuditEvent

log = logging.getLogger("TumorApp.audit")

DEFAULT_ADMIN = ("admin", "admin")


def update_account(*, user, username: str | None = None, new_password: str | None = None,
                   ip: str | None = None) -> list[str]:
    """Change the username and/or password (already validated by the form); clears the first-login flag.

    Each change is audited; returns what changed, as phrases for the user ("username changed from a to b").
    """
    changes: list[str] = []
    with transaction.atomic():
        old = user.get_username()
        if username and username != old:
            setattr(user, user.USERNAME_FIELD, username)
        if new_password:
            user.set_password(new_password)
        user.save()
        if username and username != old:
            record_event(action=AuditEvent.Action.USERNAME_CHANGE, user=user, ip=ip, detail=f"{old} -> {username}")
            changes.append(f"username changed from {old} to {username}")
        if new_password:
            AccountFlags.objects.update_or_create(user=user, defaults={"must_change_password": False})
            record_event(action=AuditEvent.Action.PASSWORD_CHANGE, user=user, ip=ip)
            changes.append("password changed")
    log.info("user=%s updated account (%s)", user.get_username(), "; ".join(changes) or "no change")
    return changes


def ensure_default_admin() -> bool:
    """Create admin/admin, flagged to change its password, only when the database has no user at all."""
    User = get_user_model()
    with transaction.atomic():
        if User.objects.exists():
            return False
        user = User.objects.create_superuser(username=DEFAULT_ADMIN[0], email="", password=DEFAULT_ADMIN[1])
        AccountFlags.objects.create(user=user, must_change_password=True)
    return True
