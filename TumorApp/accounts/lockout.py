"""Failed log-ins (django-axes; settings point here): which attempts count together, the username
as axes stores it, the lockout page (with its end time) and unlocking (audited)."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Sum
from django.shortcuts import render
from django.utils import timezone

from ..models import AuditEvent
from ..audit import record_event

# The longest username an account can have (Django's User.username); longer ones cannot match.
USERNAME_MAX = 150
UNLOCK_COMMAND = "python manage.py unlock USERNAME"


def client_username(request, credentials=None) -> str | None:
    """The attempted username, cut to what an account can have, so that an overlong one is an
    ordinary failed login instead of overflowing axes's 255-character column (MySQL refuses it)."""
    field = settings.AXES_USERNAME_FORM_FIELD
    name = (credentials or {}).get(field) if credentials else None
    if name is None and request is not None and hasattr(request, "POST"):
        name = request.POST.get(field)
    return None if name is None else str(name)[:USERNAME_MAX]


def lockout_parameters(request_or_attempt, credentials=None) -> list:
    """Normally a username is locked from one address after AXES_FAILURE_LIMIT failures; an
    address that has failed LOGIN_FAILURES_PER_ADDRESS times within the cool-off, whatever the
    usernames, is locked as a whole (one password tried against many usernames)."""
    ip = getattr(request_or_attempt, "axes_ip_address", None) or getattr(request_or_attempt, "ip_address", None)
    if ip and failures_from(ip) >= settings.LOGIN_FAILURES_PER_ADDRESS:
        return ["ip_address"]
    return [["username", "ip_address"]]


def failures_from(ip: str) -> int:
    from axes.models import AccessAttempt

    since = timezone.now() - settings.AXES_COOLOFF_TIME
    total = AccessAttempt.objects.filter(ip_address=ip, attempt_time__gte=since).aggregate(
        n=Sum("failures_since_start"))["n"]
    return int(total or 0)



def unlock(*, username: str, by: str = "", ip: str | None = None) -> int:
    """Clear django-axes' failed attempts for `username` (from every address); returns how many were removed.

    Audited as an unlock of that account, `by` naming who did it ("manage.py unlock", a staff user).
    """
    from axes.utils import reset
    from django.contrib.auth import get_user_model

    removed = reset(username=username)
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: username}).first()
    record_event(action=AuditEvent.Action.UNLOCK, user=user, username=username, ip=ip,
                 detail=f"by {by}; {removed} failed-attempt record(s) cleared" if by else
                 f"{removed} failed-attempt record(s) cleared")
    return removed


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the lockout page, saying when the lockout ends and how an administrator lifts it.

    Each attempt during a lockout starts the cool-off again (axes' default), so it ends a cool-off
    after this attempt.
    """
    from axes.conf import settings as axes_settings
    from axes.helpers import get_client_username, get_cool_off, get_failure_limit

    cool_off = get_cool_off(request)
    attempt_time = getattr(request, "axes_attempt_time", None) or timezone.now()
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": get_failure_limit(request, credentials),
        "cool_off_minutes": int(cool_off.total_seconds() // 60) if cool_off else None,
        "ends_at": attempt_time + cool_off if cool_off else None,
        "unlock_command": UNLOCK_COMMAND,
    }
    return render(request, "registration/locked_out.html", context, status=axes_settings.AXES_HTTP_RESPONSE_CODE)
