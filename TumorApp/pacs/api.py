"""PACS JSON API: GET /api/pacs/series/?patient_id=..., POST /api/pacs/retrieve/, POST /api/series/<id>/send/,
POST /api/analyses/<id>/send/.

Errors as the rest of the API: `{"error", "status"}`; 503 when no PACS is configured, 502 when the
PACS fails (unreachable, refuses, answers an error)."""
from __future__ import annotations

from django.http import JsonResponse
from django.urls import reverse

from TumorApp.analyses import selectors
from TumorApp.series import services as series_services
from TumorApp.analysis.errors import InputError
from TumorApp.api_common import allow, api_login_required, error, form_error
from TumorApp.audit import client_ip

from . import services
from .client import PacsError, PacsNotConfigured
from .forms import RetrieveForm, SearchForm


def _pacs_error(exc: PacsError) -> JsonResponse:
    return error(503 if isinstance(exc, PacsNotConfigured) else 502, str(exc))


@api_login_required
@allow("GET")
def series_search(request):
    form = SearchForm(request.GET)
    if not form.is_valid():
        return form_error(form)
    try:
        return JsonResponse({"results": services.search_series(**form.cleaned_data)})
    except PacsError as exc:
        return _pacs_error(exc)


@api_login_required
@allow("POST")
def retrieve(request):
    form = RetrieveForm(request.POST)
    if not form.is_valid():
        return form_error(form)
    try:
        job = services.import_series(user=request.user, ip=client_ip(request), **form.cleaned_data)
    except PacsError as exc:
        return _pacs_error(exc)
    except InputError as exc:
        return error(400, str(exc))
    response = JsonResponse({"id": job.pk, "status": job.status}, status=202)
    response["Location"] = reverse("api-series", args=[job.pk])
    return response


def transfer_payload(transfer) -> dict:
    return {"status": transfer.status, "sop_instance_uids": transfer.sop_instance_uids, "error": transfer.error,
            "series_instance_uid": transfer.series_instance_uid, "at": transfer.created_at.isoformat()}


def _send_answer(pk: int, send, *, refused_status: int):
    """Run `send()` (a series or slice send) and answer: 200 with the stored UIDs; 502 with the reason
    when the PACS failed (recorded: retry); `refused_status` for results that cannot be sent."""
    try:
        transfer = send()
    except PacsError as exc:
        return _pacs_error(exc)
    except InputError as exc:
        return error(refused_status, str(exc))
    if transfer.status != transfer.Status.DONE:
        return error(502, f"Sending to the PACS failed: {transfer.error}", send=transfer_payload(transfer))
    return JsonResponse({"id": pk, "send": transfer_payload(transfer)})


@api_login_required
@allow("POST")
def send(request, pk: int):
    """A finished series' results; 409 when the series has none to send."""
    job = series_services.jobs_for(request.user).filter(pk=pk).first()
    if job is None:
        return error(404, "No such series.")
    return _send_answer(job.pk, lambda: services.send_results(job=job, user=request.user, ip=client_ip(request)),
                        refused_status=409)


@api_login_required
@allow("POST")
def send_analysis(request, pk: int):
    """A single DICOM slice's results: as a series send; 400 for a PNG/JPEG upload (no DICOM source)."""
    analysis = selectors.analyses_for(request.user).filter(pk=pk).first()
    if analysis is None:
        return error(404, "No such analysis.")
    return _send_answer(analysis.pk,
                        lambda: services.send_analysis(analysis=analysis, user=request.user, ip=client_ip(request)),
                        refused_status=400)
