"""Account pages: the profile (username, password, API tokens) and the staff audit log."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from ..audit import client_ip
from . import selectors, services, tokens
from .forms import ApiTokenForm, ProfileForm

AUDIT_PAGE_SIZE = 100


@login_required
@require_http_methods(["GET", "POST"])
def profile(request):
    forced = selectors.must_change_password(request.user)
    data = request.POST if request.method == "POST" else None
    form = ProfileForm(data, user=request.user, require_new_password=forced)
    if request.method == "POST" and form.is_valid():
        if not form.has_account_changes():
            messages.info(request, "Nothing to change.")
            return redirect("profile")
        password = form.cleaned_data.get("new_password1") or None
        changes = services.update_account(user=request.user, username=form.cleaned_data["username"],
                                          new_password=password, ip=client_ip(request))
        if password:
            update_session_auth_hash(request, request.user)
        messages.success(request, "Saved: " + "; ".join(changes) + ".")
        return redirect("detect" if forced else "profile")
    status = 400 if request.method == "POST" else 200
    return _profile_page(request, form=form, forced=forced, status=status)


def _profile_page(request, *, form=None, token_form=None, forced=None, status=200):
    forced = selectors.must_change_password(request.user) if forced is None else forced
    return render(request, "profile.html", {
        "form": form or ProfileForm(user=request.user, require_new_password=forced),
        "forced": forced,
        "token_form": token_form or ApiTokenForm(),
        "tokens": tokens.tokens_for(request.user),
        # A new token is shown once: kept in the session only until this page is rendered.
        "new_token": request.session.pop("new_api_token", None),
    }, status=status)


@login_required
@require_http_methods(["POST"])
def api_token_create(request):
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return _profile_page(request, token_form=form, status=400)
    row, token = tokens.create_token(user=request.user, name=form.cleaned_data["name"],
                                     ip=client_ip(request))
    request.session["new_api_token"] = {"name": row.name, "token": token}
    return redirect("profile")


@login_required
@require_http_methods(["POST"])
def api_token_revoke(request, pk: int):
    row = tokens.revoke_token(user=request.user, token_id=pk, ip=client_ip(request))
    if row is None:
        raise Http404("No such token.")
    messages.success(request, f"Revoked the API token “{row.name}” ({row.prefix}…): it no longer works.")
    return redirect("profile")


@staff_member_required
@require_GET
def audit_log(request):
    page = Paginator(selectors.audit_events(), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit.html", {"page": page})
