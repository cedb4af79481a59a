"""Account forms: the profile (username, password) and a new API token's name."""
from __future__ import annotations

import copy

from django import forms
from django.contrib.auth import get_user_model, password_validation


class ProfileForm(forms.Form):
    """Change username and/or password; the current password is always required."""

    current_password = forms.CharField(
        label="Current password", strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}))
    username = forms.CharField(
        label="Username", max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
        help_text="Letters, digits and @/./+/-/_ only.")
    new_password1 = forms.CharField(
        label="New password", required=False, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the current password. " + " ".join(
            password_validation.password_validators_help_texts()))
    new_password2 = forms.CharField(
        label="Repeat new password", required=False, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, user, require_new_password: bool = False, **kwargs):
        self.user = user
        self.require_new_password = require_new_password
        kwargs.setdefault("initial", {"username": user.get_username()})
        super().__init__(*args, **kwargs)
        if require_new_password:
            self.fields["new_password1"].required = True
            self.fields["new_password2"].required = True
            self.fields["new_password1"].help_text = "Required: the default password must be changed. " + " ".join(
                password_validation.password_validators_help_texts())

    def clean_current_password(self):
        password = self.cleaned_data["current_password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("Your current password is incorrect.", code="password_incorrect")
        return password

    def clean_username(self):
        User = get_user_model()
        username = User.normalize_username(self.cleaned_data["username"].strip())
        User.username_validator(username)
        taken = User.objects.filter(**{f"{User.USERNAME_FIELD}__iexact": username}).exclude(pk=self.user.pk)
        if taken.exists():
            raise forms.ValidationError("That username is already taken.", code="username_taken")
        return username

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("new_password1"), cleaned.get("new_password2")
        if p1 or p2:
            if p1 != p2:
                self.add_error("new_password2", "The two new passwords do not match.")
            elif cleaned.get("current_password") and p1 == cleaned["current_password"]:
                self.add_error("new_password1", "The new password must differ from the current one.")
            else:
                # Validate against the account as it will be (new username included).
                candidate = copy.copy(self.user)
                candidate.username = cleaned.get("username") or self.user.get_username()
                try:
                    password_validation.validate_password(p1, candidate)
                except forms.ValidationError as e:
                    self.add_error("new_password1", e)
        return cleaned

    def has_account_changes(self) -> bool:
        return bool(self.cleaned_data.get("new_password1")) or \
            self.cleaned_data.get("username") != self.user.get_username()


class ApiTokenForm(forms.Form):
    """A name for a new personal API token (to tell it apart in the list)."""

    name = forms.CharField(label="Token name", max_length=100,
                           help_text="What the token is for, e.g. “PACS bridge” or “nightly script”.",
                           error_messages={"required": "Give the token a name."})
