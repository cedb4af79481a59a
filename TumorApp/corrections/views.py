"""Data the outline editor loads (issue 10): the label maps and the slice in Hounsfield units."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from ..analyses import selectors

LABEL_VERSIONS = ("model", "current")


@login_required
@require_GET
def labels(request, pk: int, which: str):
    """The network's ("model") or the current outline as the label-map PNG (pixel = label value)."""
    if which not in LABEL_VERSIONS:
        raise Http404("No such outline.")
    data = selectors.editor_labels_png(get_object_or_404(selectors.analyses_for(request.user), pk=pk), which)
    if data is None:
        raise Http404("No outline stored for this analysis.")
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_GET
def slice_hu(request, pk: int):
    """Little-endian int16 HU, row-major; X-Width / X-Height give the shape. 404 when the upload has no HU."""
    found = selectors.slice_hu(get_object_or_404(selectors.analyses_for(request.user), pk=pk))
    if found is None:
        raise Http404("This upload has no Hounsfield units (an 8-bit picture).")
    data, width, height = found
    response = HttpResponse(data, content_type="application/octet-stream")
    response["X-Width"], response["X-Height"] = str(width), str(height)
    response["Cache-Control"] = "private, max-age=3600"
    return response
