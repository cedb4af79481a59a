"""Request guards: upload size before the body is read, security and cache headers, forced first password
change, and the answers for a busy server (503) or a full disk (507)."""
from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse


from .accounts.selectors import must_change_password

# Whole-series uploads (many slices, a zip or a NIfTI) get their own, larger limit.
SERIES_UPLOAD_PATHS = frozenset({"/series/new/", "/api/series/"})


def wants_json(request) -> bool:
    return request.path.startswith("/api/")


class UploadSizeLimitMiddleware:
    """Refuse bodies over the upload limit from Content-Length alone, before Django reads them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_UPLOAD_BYTES
        if request.path in SERIES_UPLOAD_PATHS:
            limit = settings.MAX_SERIES_UPLOAD_BYTES
        if length > limit + settings.MULTIPART_OVERHEAD_BYTES:
            message = (f"The upload ({length:,} bytes with its form data) is over the limit of "
                       f"{limit:,} bytes ({filesizeformat(limit)}).")
            if wants_json(request):
                response = JsonResponse({"error": message, "status": 413}, status=413)
            else:
                response = render(request, "error.html", {"title": "Upload too large", "message": message},
                                  status=413)
            # No "Connection: close" here: it is hop-by-hop, and a WSGI server (waitress) refuses it
            # from the application with a 500. The server closes the connection itself as needed.
            return response
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Content-Security-Policy (Django 5.2 has none built in); the pages use no inline script or style."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        response.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        # Pages, images and JSON show patient data: never kept in a (shared) browser's or proxy's
        # cache. Static files never get here (WhiteNoise answers them earlier in the chain).
        if "no-store" not in response.get("Cache-Control", ""):
            response["Cache-Control"] = "no-store, private"
        return response


class ServiceErrorMiddleware:
    """The services' "cannot now" errors as clear answers: busy -> 503, disk full -> 507."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from .analyses import services

        if isinstance(exception, services.ServerBusy):
            status, title = 503, "Server busy"
        elif isinstance(exception, services.StorageFull):
            status, title = 507, "Storage full"
        else:
            return None
        message = str(exception)
        if wants_json(request):
            response = JsonResponse({"error": message, "status": status}, status=status)
        else:
            response = render(request, "error.html", {"title": title, "message": message}, status=status)
        if status == 503:
            response["Retry-After"] = "30"
        return response


class ForcePasswordChangeMiddleware:
    """Until the first-run admin changes the default password, every page leads to the profile page."""

    ALLOWED = ("profile", "logout")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not self._exempt(request) and must_change_password(user):
            if wants_json(request):
                return JsonResponse({"error": "This account still has the default password: change it on the "
                                              "profile page (/profile/) before using the API.",
                                     "status": 403}, status=403)
            # The profile page itself says why (once); no extra message here.
            return redirect("profile")
        return self.get_response(request)

    def _exempt(self, request) -> bool:
        path = request.path
        if settings.STATIC_URL and path.startswith("/" + settings.STATIC_URL.lstrip("/")):
            return True
        return path in {reverse(name) for name in self.ALLOWED}
