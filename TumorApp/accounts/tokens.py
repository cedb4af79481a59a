"""Personal API tokens: create (shown once), revoke, list, and check a `Bearer` token; every change audited."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from ..models import ApiToken, AuditEvent
from ..audit import record_event

TOKEN_PREFIX = "lt_"  # says what the secret is when it turns up in a script or a log
NAME_MAX = 100


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(*, user, name: str, ip: str | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token, which is not stored and cannot be shown again."""
    name = " ".join((name or "").split())[:NAME_MAX] or "API token"
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        row = ApiToken.objects.create(user=user, name=name, key_hash=_hash(token), prefix=token[:10])
        record_event(action=AuditEvent.Action.TOKEN_CREATE, user=user, ip=ip, detail=f"{name} ({row.prefix}…)")
    return row, token


def revoke_token(*, user, token_id: int, ip: str | None = None) -> ApiToken | None:
    """Revoke one of `user`'s tokens (None when it is not theirs); revoking twice changes nothing."""
    with transaction.atomic():
        row = ApiToken.objects.select_for_update().filter(user=user, pk=token_id).first()
        if row is None or row.revoked_at is not None:
            return row
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
        record_event(action=AuditEvent.Action.TOKEN_REVOKE, user=user, ip=ip, detail=f"{row.name} ({row.prefix}…)")
    return row


def tokens_for(user):
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


@dataclass(frozen=True)
class TokenCheck:
    user: object | None  # the token's owner when the token is valid and the account active
    error: str = ""


def authenticate(token: str, *, ip: str | None = None) -> TokenCheck:
    """Check a presented token; a revoked one is audited. Updates the token's last-used time."""
    row = ApiToken.objects.select_related("user").filter(key_hash=_hash(token.strip())).first()
    if row is None:
        return TokenCheck(None, "The API token is not valid.")
    if row.revoked_at is not None:
        record_event(action=AuditEvent.Action.TOKEN_REVOKED_USE, user=row.user, ip=ip,
                     detail=f"{row.name} ({row.prefix}…)")
        return TokenCheck(None, "This API token has been revoked.")
    if not row.user.is_active:
        return TokenCheck(None, "The account of this API token is disabled.")
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return TokenCheck(row.user)
