"""Password rules beyond Django's own validators."""
from __future__ import annotations

from django.core.exceptions import ValidationError


class PasswordWithoutUsernameValidator:
    """The password may not contain the username (any case): "admin12345" for "admin" is refused.
    Django's similarity validator lets such passwords through when they are long enough."""

    def validate(self, password, user=None):
        username = (user.get_username() if user is not None else "") or ""
        if len(username) >= 3 and username.lower() in (password or "").lower():
            raise ValidationError("The password may not contain your username.", code="password_contains_username")

    def get_help_text(self):
        return "Your password may not contain your username."
