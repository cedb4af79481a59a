"""Whole-series pages and JSON API (issue 11): upload -> 202/redirect, progress, result, slice viewer, export,
delete.

Views validate (a form), call one service, render; the work happens in the worker.
"""
from __future__ import annotations

import numpy as np
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

from TumorApp.analysis.errors import InputError
from TumorApp.analysis.labels import as_json as label_registry
from TumorApp.analysis.series.slice_view import WINDOWS, render_slice

from . import corrections as series_corrections, services as series_services
from ..analyses import services
from ..analyses.api import _multipart_put, allow, api_login_required, error
from ..models import AuditEvent, SeriesJob, SeriesVersion
from ..pacs import client as pacs_client
from ..pacs import services as pacs_services


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A list of uploaded files (Django's documented pattern for <input multiple>)."""

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)) and data:
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class SeriesUploadForm(forms.Form):
    """The files of one series (DICOM files, or a zip of them) or one NIfTI volume."""

    file = MultipleFileField(
        label="CT series",
        widget=MultipleFileInput(attrs={"multiple": True, "accept": ".dcm,.zip,.nii,.gz,application/dicom"}),
        help_text="All DICOM files of one axial CT series (select them all, or one .zip), or one NIfTI "
                  "volume (.nii or .nii.gz). Up to 1000 slices (about 850 of 512 x 512).",
        error_messages={"required": "Choose the files of one CT series, a zip, or a NIfTI volume."},
    )

    def clean_file(self):
        uploads = self.cleaned_data["file"]
        total = sum(u.size for u in uploads)
        limit = settings.MAX_SERIES_UPLOAD_BYTES
        if total > limit:
            raise forms.ValidationError(f"The upload is {filesizeformat(total)}; the limit is {filesizeformat(limit)}.",
                                        code="too_large")
        if any(u.size == 0 for u in uploads):
            raise forms.ValidationError("One of the files is empty.", code="empty")
        return uploads


def _owned(request, pk: int) -> SeriesJob:
    return get_object_or_404(series_services.jobs_for(request.user), pk=pk)


def _audit(request, job: SeriesJob, action: str) -> None:
    """Record who saw or took a series' result, as analysis views are (detail "series <id>")."""
    services.record_event(action=action, user=request.user, ip=services.client_ip(request), detail=f"series {job.pk}")


# --- pages ---------------------------------------------------------------------------------------

@login_required
@require_http_methods(["GET", "POST"])
def series_new(request):
    form = SeriesUploadForm(request.POST, request.FILES) if request.method == "POST" else SeriesUploadForm()
    if request.method == "POST" and form.is_valid():
        try:
            job = series_services.submit_series(user=request.user, uploads=form.cleaned_data["file"],
                                                ip=services.client_ip(request))
        except InputError as e:
            form.add_error("file", str(e))
        else:
            return redirect("series", pk=job.pk)
    return render(request, "series/new.html",
                  {"form": form, "jobs": series_services.jobs_for(request.user)[:20]},
                  status=400 if request.method == "POST" else 200)


@login_required
@require_GET
def series_detail(request, pk: int):
    job = _owned(request, pk)
    _audit(request, job, AuditEvent.Action.SERIES_VIEW)
    context = {"job": job, "windows": list(WINDOWS), "payload": series_services.payload(job),
               "pacs_configured": pacs_client.configured(), "pacs_send": pacs_services.last_send(job)}
    if job.status == SeriesJob.Status.DONE:
        context["lesions"] = [dict(lesion, number=n) for n, lesion in enumerate(job.result.get("lesions", []), 1)]
        context["inference"] = job.result.get("inference", "")  # the footer names the backend that ran
        context["corrected_at"] = _corrected_at(job)
        context["label_registry"] = label_registry()  # the editor's colours and windows
        context["versions"] = [dict(v, created_at=parse_datetime(v["created_at"]))
                               for v in context["payload"]["versions"]]
    return render(request, "series/detail.html", context)


@login_required
@require_GET
def series_report(request, pk: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        return redirect("series", pk=job.pk)
    _audit(request, job, AuditEvent.Action.SERIES_VIEW)
    lesions = [dict(lesion, number=n) for n, lesion in enumerate(job.result.get("lesions", []), 1)]
    return render(request, "series/report.html", {"job": job, "lesions": lesions, "corrected_at": _corrected_at(job)})


def _corrected_at(job: SeriesJob):
    """When the current correction was saved, as a datetime for the templates (None if uncorrected)."""
    value = job.result.get("corrected_at")
    return parse_datetime(value) if value else None


@login_required
@require_GET
def series_slice(request, pk: int, index: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    try:  # ?version=0: the network's outline, for the compare switch
        ct, labels = series_services.volume_arrays(job, _version_param(request))
    except SeriesVersion.DoesNotExist:
        raise Http404("No such version.")
    if not 0 <= index < ct.shape[0]:
        raise Http404("No such slice.")
    overlay = request.GET.get("overlay", "1") != "0"
    png = render_slice(ct[index], labels[index] if overlay else None, request.GET.get("window", "abdomen"))
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def series_delete(request, pk: int):
    job = _owned(request, pk)
    if request.method == "POST":
        try:
            series_services.delete_series(job=job, ip=services.client_ip(request))
        except series_services.SeriesRunning as e:
            return render(request, "series/confirm_delete.html", {"job": job, "refused": str(e)}, status=409)
        messages.success(request, f"Deleted the series {job.name}.")
        return redirect("series-new")
    return render(request, "series/confirm_delete.html", {"job": job})


def _download(request, job: SeriesJob, action: str) -> HttpResponse:
    """A version's export (`?version=N`, default the latest) as an attachment, audited with its
    version; `SeriesJob.DoesNotExist` when the series was deleted meanwhile, Http404 for a version
    that is not kept."""
    from .corrections import current_version

    version = _version_param(request)
    version = current_version(job) if version is None else version
    try:  # ?format=nifti: NIfTI labels in patient space for a DICOM series too
        data, name, content_type = series_services.export_file(job, version,
                                                               nifti=request.GET.get("format") == "nifti")
    except SeriesVersion.DoesNotExist:
        raise Http404("No such version.")
    services.record_event(action=action, user=request.user, ip=services.client_ip(request),
                          detail=f"series {job.pk}" + (f" version {version}" if version else ""))
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Labels-Version"] = str(version)
    return response


@login_required
@require_GET
def series_export(request, pk: int):
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    try:
        return _download(request, job, AuditEvent.Action.SERIES_EXPORT)
    except SeriesJob.DoesNotExist:
        raise Http404("The series was deleted.")


# --- JSON API ------------------------------------------------------------------------------------

@api_login_required
@allow("GET", "POST")
def api_series_list(request):
    if request.method == "GET":
        return JsonResponse({"results": [
            {"id": j.pk, "status": j.status, "progress": [j.progress_done, j.progress_total], "name": j.name,
             "url": reverse("api-series", args=[j.pk])} for j in series_services.jobs_for(request.user)[:50]]})
    form = SeriesUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        errors = {f: [e["message"] for e in errs] for f, errs in form.errors.get_json_data().items()}
        too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
        return error(413 if too_large else 400, " ".join(m for ms in errors.values() for m in ms), fields=errors)
    try:
        job = series_services.submit_series(user=request.user, uploads=form.cleaned_data["file"],
                                            ip=services.client_ip(request))
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
            series_services.delete_series(job=job, ip=services.client_ip(request))
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


# --- corrections (issue 20) ----------------------------------------------------------------------

def _version_param(request) -> int | None:
    """`?version=N` (None when absent); Http404 for anything but a whole number."""
    value = request.GET.get("version")
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise Http404("No such version.")
    return int(value)


@login_required
@require_GET
def series_slice_labels(request, pk: int, index: int):
    """One slice's labels for the editor: grey PNG 0 / 128 liver / 255 tumour (`?version=N`, default current)."""
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    try:
        _, labels = series_services.volume_arrays(job, _version_param(request))
    except SeriesVersion.DoesNotExist:
        raise Http404("No such version.")
    if not 0 <= index < labels.shape[0]:
        raise Http404("No such slice.")
    response = HttpResponse(series_corrections.label_png(labels[index]), content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def series_slice_hu(request, pk: int, index: int):
    """One slice in HU for the editor: little-endian int16, row-major; X-Width / X-Height give the shape."""
    job = _owned(request, pk)
    if job.status != SeriesJob.Status.DONE:
        raise Http404("No result yet.")
    ct, _ = series_services.volume_arrays(job)
    if not 0 <= index < ct.shape[0]:
        raise Http404("No such slice.")
    plane = np.ascontiguousarray(ct[index], dtype="<i2")
    response = HttpResponse(plane.tobytes(), content_type="application/octet-stream")
    response["X-Height"], response["X-Width"] = str(plane.shape[0]), str(plane.shape[1])
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _corrected(request, job: SeriesJob, action: str, **change) -> JsonResponse:
    """Save one correction through the service; the recomputed series JSON, or a JSON error."""
    try:
        series_corrections.correct_series(job=job, user=request.user, ip=services.client_ip(request),
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
    from TumorApp.analysis.series.correct import labels_from_upload
    from TumorApp.analysis.series.volume import load_series

    job, refusal = _done_job(request, pk)
    if refusal:
        return refusal
    try:
        _, files = _multipart_put(request)
    except MultiPartParserError as e:
        return error(400, str(e) or "The multipart body could not be read.")
    upload = files.get("labels")
    if upload is None:
        return error(400, "Send the label volume as the multipart/form-data field 'labels' (NIfTI or DICOM-SEG).",
                     fields={"labels": ["required"]})
    if upload.size > settings.MAX_SERIES_UPLOAD_BYTES:
        return error(413, "The label volume is larger than any series upload may be.")
    try:
        volume = load_series(series_services.input_items(job))  # the series' geometry, as its export uses
        labels = labels_from_upload(upload.read(), volume, name=f"'{upload.name}'")
    except InputError as e:
        return error(400, str(e), fields={"labels": [str(e)]})
    return _corrected(request, job, AuditEvent.Action.API_SERIES_CORRECT, labels=labels)


@api_login_required
@allow("PUT")
def series_slices_labels(request, pk: int):
    """The editor's save: only the changed slices, JSON {"slices": {"<index>": "<base64 PNG>"}}
    (0-based indices; PNG grey 0 background, 128 liver, 255 tumour at the slice's size)."""
    job, refusal = _done_job(request, pk)
    if refusal:
        return refusal
    ct, _ = series_services.volume_arrays(job)
    try:
        slices = series_corrections.slices_from_json(request.body, ct.shape)
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
    except InputError as e:
        return error(400, str(e))
    return _corrected(request, job, AuditEvent.Action.SERIES_CORRECT, interpolate=between)
