"""Login throttling rules for django-axes (settings point here): which attempts count together,
and the username as axes stores it."""
from __future__ import annotations

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

# The longest username an account can have (Django's User.username); longer ones cannot match.
USERNAME_MAX = 150


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
