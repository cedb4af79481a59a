"""HTML pages: validate with a form, call one service or selector, render. No image work here."""
from __future__ import annotations

import sys

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import DatabaseError
from django.http import Http404, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template import loader
from django.views.decorators.http import require_GET, require_http_methods

from TumorApp.analysis import labels
from TumorApp.analysis.config import CONTRACT
from TumorApp.analysis.errors import InputError

from . import selectors, services
from ..accounts import tokens
from .forms import AnalysisUploadForm, ApiTokenForm, ProfileForm
from ..models import AuditEvent
from ..middleware import wants_json

HISTORY_PAGE_SIZE = 12
AUDIT_PAGE_SIZE = 100

SPACING_LABELS = {"dicom": "from DICOM", "user": "entered", "assumed": "assumed"}


def _owned(request, pk: int):
    return get_object_or_404(selectors.analyses_for(request.user), pk=pk)


def _viewed(request, pk: int):
    analysis = _owned(request, pk)
    services.record_event(action=AuditEvent.Action.VIEW, user=request.user, analysis_id=analysis.pk,
                          ip=services.client_ip(request))
    return analysis


@require_GET
def home(request):
    return render(request, "home.html")


@login_required
@require_http_methods(["GET", "POST"])
def detect(request):
    form = AnalysisUploadForm(request.POST, request.FILES) if request.method == "POST" else AnalysisUploadForm()
    if request.method == "POST" and form.is_valid():
        try:
            analysis = services.create_analysis(
                user=request.user, upload=form.cleaned_data["file"],
                pixel_spacing=form.cleaned_data["pixel_spacing"], ip=services.client_ip(request))
        except InputError as e:
            form.add_error("file", str(e))
        else:
            return redirect("analysis", pk=analysis.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "analyses/detect.html", {"form": form}, status=status)


def _result_context(analysis):
    correction, _ = selectors.correction_of(analysis)
    return {
        "analysis": analysis,
        "correction": correction,
        "compare": selectors.compare_panels(analysis) if correction else None,
        "result": analysis.result,
        "lesions": analysis.lesions,
        "images": selectors.embedded_images(analysis),
        "spacing_label": SPACING_LABELS.get(analysis.spacing_source, analysis.spacing_source),
        "low_confidence": CONTRACT.low_confidence,
        "label_registry": labels.as_json(),  # the editor's colours and windows
        "inference": _slice_inference(),
    }


def _slice_inference() -> str:
    """The footer's "Inference: onnx-int8 on CPU": the backend this server runs single slices on."""
    from TumorApp.analysis.model.runtime import slice_inference

    try:
        return slice_inference()
    except Exception:  # the page must not fail over a footer line
        return ""


@login_required
@require_GET
def analysis_detail(request, pk: int):
    return render(request, "analyses/result.html", _result_context(_viewed(request, pk)))


@login_required
@require_GET
def analysis_report(request, pk: int):
    return render(request, "analyses/report.html", _result_context(_viewed(request, pk)))


@login_required
@require_GET
def analysis_image(request, pk: int, name: str):
    data = selectors.image_bytes(_owned(request, pk), name)
    if data is None:
        raise Http404("No such image.")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "no-store, private"  # patient data: not kept after logout
    return response


@login_required
@require_http_methods(["GET", "POST"])
def analysis_delete(request, pk: int):
    analysis = _owned(request, pk)
    if request.method == "POST":
        name = analysis.original_name
        services.delete_analysis(analysis=analysis, ip=services.client_ip(request))
        messages.success(request, f"Deleted the analysis of {name}.")
        return redirect("history")
    return render(request, "analyses/confirm_delete.html", {"analysis": analysis})


@login_required
@require_GET
def history(request):
    page = Paginator(selectors.analyses_for(request.user), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "analyses/history.html", {"page": page})


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
                                          new_password=password, ip=services.client_ip(request))
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
                                     ip=services.client_ip(request))
    request.session["new_api_token"] = {"name": row.name, "token": token}
    return redirect("profile")


@login_required
@require_http_methods(["POST"])
def api_token_revoke(request, pk: int):
    row = tokens.revoke_token(user=request.user, token_id=pk, ip=services.client_ip(request))
    if row is None:
        raise Http404("No such token.")
    messages.success(request, f"Revoked the API token “{row.name}” ({row.prefix}…): it no longer works.")
    return redirect("profile")


@staff_member_required
@require_GET
def audit_log(request):
    page = Paginator(selectors.audit_events(), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit.html", {"page": page})


def _error(request, status: int, title: str, message: str):
    if wants_json(request):
        return JsonResponse({"error": message, "status": status}, status=status)
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def csrf_failure(request, reason=""):
    if wants_json(request):
        return _error(request, 403, "Request refused",
                      "CSRF check failed for a session-authenticated request: send the csrftoken cookie's value "
                      "as the X-CSRFToken header (and a Referer on HTTPS), or authenticate with "
                      "'Authorization: Bearer <token>' instead, which needs no CSRF token.")
    return _error(request, 403, "Request refused",
                  "The form's security token was missing or expired. Reload the page and try again.")


def bad_request(request, exception=None):
    return _error(request, 400, "Bad request", "The request could not be understood.")


def permission_denied(request, exception=None):
    what = "resource" if wants_json(request) else "page"
    return _error(request, 403, "Not allowed", f"You do not have access to this {what}.")


def page_not_found(request, exception=None):
    return _error(request, 404, "Not found", "There is nothing here, or it belongs to another account.")


def server_error(request):
    # Rendered without the request's context (user, session): those may be what failed.
    status, title, message = 500, "Something went wrong", "The server could not finish this request. Please try again."
    if isinstance(sys.exc_info()[1], DatabaseError):
        status, title = 503, "Database unavailable"
        message = "The database cannot be reached right now. Nothing was lost; please try again in a minute."
    if wants_json(request):
        return JsonResponse({"error": message, "status": status}, status=status)
    html = loader.get_template("500.html").render({"title": title, "message": message})
    response = HttpResponseServerError(html, status=status)
    if status == 503:
        response["Retry-After"] = "30"
    return response
