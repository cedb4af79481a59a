"""JSON API: POST /api/analyses/, GET and DELETE /api/analyses/<id>/, PUT .../masks/; same JSON as `manage.py analyze --json`.

Authentication: `Authorization: Bearer <token>` (a personal API token, no CSRF token needed) or the
browser session (then POST needs the CSRF token, as for any form).
"""
from __future__ import annotations

from functools import wraps

from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from TumorApp.analysis.errors import InputError

from . import selectors, services
from ..accounts import tokens
from .forms import AnalysisUploadForm, MaskCorrectionForm
from ..models import AuditEvent

LIST_LIMIT = 50


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, "status": status, **extra}, status=status)


def _unauthorised(message: str) -> JsonResponse:
    response = error(401, message)
    response["WWW-Authenticate"] = 'Bearer realm="tumor"'
    return response


def _csrf_refusal(request):
    """The CSRF check Django's middleware would make (the views are exempt so tokens can skip it)."""
    return CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})


def api_login_required(view):
    """Bearer token or session; 401 JSON instead of the HTML login redirect.

    A request with an `Authorization` header is judged by its token alone (no CSRF: a browser never
    adds that header by itself); a session request must pass Django's CSRF check on POST.
    """
    @csrf_exempt
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _unauthorised("Send the API token as 'Authorization: Bearer <token>'.")
            check = tokens.authenticate(token, ip=services.client_ip(request))
            if check.user is None:
                return _unauthorised(check.error + " Create a token on the profile page or with "
                                     "'python manage.py create_api_token USERNAME'.")
            request.user = check.user
            if selectors.must_change_password(check.user):
                return error(403, "This account still has the default password: log in and change it on "
                                  "the profile page before using the API.")
        elif not request.user.is_authenticated:
            return _unauthorised("Authentication required: send 'Authorization: Bearer <token>' "
                                 "(see the README's API section), or a session cookie from /login/.")
        else:
            refusal = _csrf_refusal(request)
            if refusal is not None:
                return refusal
        return view(request, *args, **kwargs)
    return wrapper


def allow(*methods):
    """Like require_http_methods, but the 405 is JSON."""
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                response = error(405, f"Method {request.method} not allowed.")
                response["Allow"] = ", ".join(methods)
                return response
            return view(request, *args, **kwargs)
        return wrapper
    return decorator


# The form's wording is for people at the upload page; these say what an API client must send.
API_MESSAGES = {("file", "required"): "Send the CT slice as the multipart/form-data field 'file'.",
                ("pixel_spacing", "invalid"): "'pixel_spacing' must be a number of millimetres."}


def _form_errors(form) -> dict:
    return {field: [API_MESSAGES.get((field, e["code"]), e["message"]) for e in errs]
            for field, errs in form.errors.get_json_data().items()}


@api_login_required
@allow("GET", "POST")
def analyses(request):
    if request.method == "GET":
        items = selectors.analyses_for(request.user)[:LIST_LIMIT]
        return JsonResponse({"results": [
            {"id": a.pk, "created_at": a.created_at.isoformat(), "file": a.original_name,
             "tumor_detected": a.tumor_detected, "stage": a.stage or None,
             "inconclusive": bool(a.result.get("inconclusive", False)),
             "url": reverse("api-analysis", args=[a.pk])} for a in items]})
    form = AnalysisUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = _form_errors(form)
        too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
        return error(413 if too_large else 400, " ".join(m for ms in errors.values() for m in ms), fields=errors)
    try:
        analysis = services.create_analysis(user=request.user, upload=form.cleaned_data["file"],
                                            pixel_spacing=form.cleaned_data["pixel_spacing"],
                                            ip=services.client_ip(request), action=AuditEvent.Action.API_ANALYSE)
    except InputError as e:
        return error(400, str(e), fields={"file": [str(e)]})
    response = JsonResponse(selectors.api_payload(analysis), status=201)
    response["Location"] = reverse("api-analysis", args=[analysis.pk])
    return response


@api_login_required
@allow("GET", "DELETE")
def analysis(request, pk: int):
    found = selectors.analyses_for(request.user).filter(pk=pk).first()
    if found is None:
        return error(404, "No such analysis for this account.")
    if request.method == "DELETE":
        services.delete_analysis(analysis=found, ip=services.client_ip(request))
        return HttpResponse(status=204)
    services.record_event(action=AuditEvent.Action.API_VIEW, user=request.user, analysis_id=found.pk,
                          ip=services.client_ip(request))
    return JsonResponse(selectors.api_payload(found))


def _multipart_put(request):
    """(data, files) of a multipart PUT body: Django parses multipart only for POST."""
    if not request.content_type.startswith("multipart/form-data"):
        raise MultiPartParserError("Send the masks as multipart/form-data.")
    return request.parse_file_upload(request.META, request)


@api_login_required
@allow("PUT")
def analysis_masks(request, pk: int):
    """PUT corrected liver and tumour masks: a new version, the result recomputed from it."""
    found = selectors.analyses_for(request.user).filter(pk=pk).first()
    if found is None:
        return error(404, "No such analysis for this account.")
    try:
        data, files = _multipart_put(request)
    except MultiPartParserError as e:
        return error(400, str(e) or "The multipart body could not be read.")
    form = MaskCorrectionForm(data, files)
    if not form.is_valid():
        errors = _form_errors(form)
        return error(400, " ".join(m for ms in errors.values() for m in ms), fields=errors)
    try:
        services.correct_masks(analysis=found, user=request.user, liver_png=form.cleaned_data["liver"].read(),
                               tumor_png=form.cleaned_data["tumor"].read(), ip=services.client_ip(request))
    except InputError as e:
        return error(400, str(e))
    found.refresh_from_db()
    return JsonResponse(selectors.api_payload(found))
