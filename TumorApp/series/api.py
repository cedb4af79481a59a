"""Series JSON API (issue 11) and the editor's saves (issue 20): upload -> 202, progress and result,
export, delete, corrected labels.  Authentication and errors: TumorApp/api_common.py.
"""
from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.core.exceptions import RequestDataTooBig
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse

from TumorApp.analysis.errors import InputError

from .. import audit
from ..api_common import allow, api_login_required, error, form_error, multipart_put
from ..models import AuditEvent, SeriesJob
from . import corrections as series_corrections, services as series_services
from .forms import SeriesUploadForm
from .views import _audit, _download  # shared with the pages: the audit line and the export download


@api_login_required
@allow("GET", "POST")
def api_series_list(request):
    if request.method == "GET":
        return JsonResponse({"results": [
            {"id": j.pk, "status": j.status, "progress": [j.progress_done, j.progress_total], "name": j.name,
             "url": reverse("api-series", args=[j.pk])} for j in series_services.jobs_for(request.user)[:50]]})
    form = SeriesUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return form_error(form)
    try:
        job = series_services.submit_series(user=request.user, uploads=form.cleaned_data["file"],
                                            ip=audit.client_ip(request))
    except InputError as e:
        return error(400, str(e), fields={"file": [str(e)]})
    response = JsonResponse({"id": job.pk, "status": job.status}, status=202)
    response["Location"] = reverse("api-series", args=[job.pk])
    return response


@api_login_required
@allow("GET", "DELETE")
def api_series(request, pk: int):
    job = series_services.jobs_for(request.user).filter(pk=pk).first()
    if job is None:
        return error(404, "No such series.")
    if request.method == "DELETE":
        try:
            series_services.delete_series(job=job, ip=audit.client_ip(request))
        except series_services.SeriesRunning as e:
            return error(409, str(e))
        return HttpResponse(status=204)
    if job.status == SeriesJob.Status.DONE:  # the result; progress polls while it runs are not audited
        _audit(request, job, AuditEvent.Action.API_SERIES_VIEW)
    return JsonResponse(series_services.payload(job))


@api_login_required
@allow("GET")
def api_series_export(request, pk: int):
    job = series_services.jobs_for(request.user).filter(pk=pk).first()
    if job is None:
        return error(404, "No such series.")
    if job.status != SeriesJob.Status.DONE:
        return error(409, f"The series is {job.status}; the export exists once it is done.")
    try:
        return _download(request, job, AuditEvent.Action.API_SERIES_EXPORT)
    except SeriesJob.DoesNotExist:
        return error(404, "No such series (it was deleted).")
    except Http404:
        return error(404, "No such version of this series (see \"versions\" in its JSON).")


def _corrected(request, job: SeriesJob, action: str, **change) -> JsonResponse:
    """Save one correction through the service; the recomputed series JSON, or a JSON error."""
    try:
        series_corrections.correct_series(job=job, user=request.user, ip=audit.client_ip(request),
                                          action=action, **change)
    except InputError as e:
        return error(400, str(e))
    except series_corrections.SeriesNotDone as e:
        return error(409, str(e))
    except SeriesJob.DoesNotExist:
        return error(404, "No such series (it was deleted).")
    return JsonResponse(series_services.payload(job))


def _done_job(request, pk: int):
    """(job, None) or (None, the JSON error): 404 for another user's series, 409 until it is done."""
    job = series_services.jobs_for(request.user).filter(pk=pk).first()
    if job is None:
        return None, error(404, "No such series.")
    if job.status != SeriesJob.Status.DONE:
        return None, error(409, f"The series is {job.status}; it can be corrected once it is done.")
    return job, None


@api_login_required
@allow("PUT")
def api_series_labels(request, pk: int):
    """PUT a whole corrected label volume (multipart field `labels`: NIfTI or DICOM-SEG in the
    series' patient space): a new version, every figure recomputed without the network."""
    from TumorApp.analysis.series.correct import labels_from_upload, upload_kind

    job, refusal = _done_job(request, pk)
    if refusal:
        return refusal
    try:
        _, files = multipart_put(request)
    except MultiPartParserError as e:
        return error(400, str(e) or "The multipart body could not be read.")
    upload = files.get("labels")
    if upload is None:
        return error(400, "Send the label volume as the multipart/form-data field 'labels' (NIfTI or DICOM-SEG).",
                     fields={"labels": ["required"]})
    if upload.size > settings.MAX_SERIES_UPLOAD_BYTES:
        return error(413, "The label volume is larger than any series upload may be.")
    name = f"'{upload.name}'"
    try:
        data = upload.read()
        upload_kind(data, name)  # the upload is read and sniffed before the stored series is touched
        labels = labels_from_upload(data, series_services.geometry(job), name=name)
    except InputError as e:
        return error(400, str(e), fields={"labels": [str(e)]})
    return _corrected(request, job, AuditEvent.Action.API_SERIES_CORRECT, labels=labels)


@api_login_required
@allow("PUT")
def series_slices_labels(request, pk: int):
    """The editor's save: only the changed slices, JSON {"slices": {"<index>": "<base64 PNG>"}}
    (0-based indices; each a label-map PNG at the slice's size, `labels.decode_png`)."""
    job, refusal = _done_job(request, pk)
    if refusal:
        return refusal
    ct, _ = series_services.volume_arrays(job)
    try:
        slices = series_corrections.slices_from_json(request.body, ct.shape)
    except RequestDataTooBig:
        return error(413, f"The save is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes; save fewer "
                          "slices at a time.")
    except InputError as e:
        return error(400, str(e))
    return _corrected(request, job, AuditEvent.Action.SERIES_CORRECT, slices=slices)


@api_login_required
@allow("POST")
def series_remove_lesion(request, pk: int, number: int):
    """Remove 3-D lesion `number` (as listed) through every slice it spans: a new version."""
    job, refusal = _done_job(request, pk)
    if refusal:
        return refusal
    return _corrected(request, job, AuditEvent.Action.SERIES_CORRECT, remove_lesion=number)


@api_login_required
@allow("POST")
def series_interpolate(request, pk: int):
    """Interpolate the slices between two (JSON {"from": a, "to": b}, 0-based) from their saved labels."""
    job, refusal = _done_job(request, pk)
    if refusal:
        return refusal
    try:
        between = series_corrections.interpolation_from_json(request.body)
    except RequestDataTooBig:
        return error(413, "The request body is too large for an interpolation.")
    except InputError as e:
        return error(400, str(e))
    return _corrected(request, job, AuditEvent.Action.SERIES_CORRECT, interpolate=between)
