"""JSON API: POST /api/analyses/, GET and DELETE /api/analyses/<id>/, PUT .../masks/; same JSON as `manage.py analyze --json`.

Authentication, method checks and JSON errors: TumorApp/api_common.py, as for every resource's API.
"""
from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse

from TumorApp.analysis.errors import InputError

from .. import audit
from ..api_common import allow, api_login_required, error, form_error, multipart_put
from ..models import AuditEvent
from . import selectors, services
from .forms import AnalysisUploadForm, MaskCorrectionForm

LIST_LIMIT = 50


# The form's wording is for people at the upload page; these say what an API client must send.
API_MESSAGES = {("file", "required"): "Send the CT slice as the multipart/form-data field 'file'.",
                ("pixel_spacing", "invalid"): "'pixel_spacing' must be a number of millimetres."}


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
        return form_error(form, API_MESSAGES)
    try:
        analysis = services.create_analysis(user=request.user, upload=form.cleaned_data["file"],
                                            pixel_spacing=form.cleaned_data["pixel_spacing"],
                                            ip=audit.client_ip(request), action=AuditEvent.Action.API_ANALYSE)
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
        services.delete_analysis(analysis=found, ip=audit.client_ip(request))
        return HttpResponse(status=204)
    audit.record_event(action=AuditEvent.Action.API_VIEW, user=request.user, analysis_id=found.pk,
                          ip=audit.client_ip(request))
    return JsonResponse(selectors.api_payload(found))


@api_login_required
@allow("PUT")
def analysis_masks(request, pk: int):
    """PUT a corrected outline (one label map, or liver and tumour masks): a new version, the result
    recomputed from it."""
    found = selectors.analyses_for(request.user).filter(pk=pk).first()
    if found is None:
        return error(404, "No such analysis for this account.")
    try:
        data, files = multipart_put(request)
    except MultiPartParserError as e:
        return error(400, str(e) or "The multipart body could not be read.")
    form = MaskCorrectionForm(data, files)
    if not form.is_valid():
        return form_error(form, API_MESSAGES)
    try:
        sent = {name: form.cleaned_data[name].read() for name in ("labels", "liver", "tumor") if form.cleaned_data[name]}
        services.correct_masks(analysis=found, user=request.user, ip=audit.client_ip(request),
                               labels_png=sent.get("labels"), liver_png=sent.get("liver"), tumor_png=sent.get("tumor"))
    except InputError as e:
        return error(400, str(e))
    found.refresh_from_db()
    return JsonResponse(selectors.api_payload(found))
