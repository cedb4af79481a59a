"""What every resource's JSON API shares (analyses/api.py, series/api.py, pacs/api.py): JSON errors,
authentication by API token or session, allowed methods, multipart PUT bodies.

Authentication: `Authorization: Bearer <token>` (a personal API token, no CSRF token needed) or the
browser session (then POST needs the CSRF token, as for any form).
"""
from __future__ import annotations

from functools import wraps

from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from .accounts import selectors, tokens
from . import audit


def error(status: int, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": message, "status": status, **extra}, status=status)


def form_error(form, messages: dict | None = None) -> JsonResponse:
    """An invalid form as the API's JSON error: each field's messages (`messages` rewords one by
    (field, code) for API clients) under `fields` and joined as the message; 413 when the uploaded
    `file` was too large, else 400."""
    fields = {field: [(messages or {}).get((field, e["code"]), e["message"]) for e in errs]
              for field, errs in form.errors.get_json_data().items()}
    too_large = any(e.code == "too_large" for e in form.errors.as_data().get("file", []))
    return error(413 if too_large else 400, " ".join(m for ms in fields.values() for m in ms), fields=fields)


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
            check = tokens.authenticate(token, ip=audit.client_ip(request))
            if check.user is None:
                return _unauthorised(check.error + " Create a token on the profile page or with "
                                     "'python manage.py create_api_token USERNAME'.")
            request.user = check.user
            if selectors.must_change_password(check.user):
                return error(403, "This account still has the default password: log in and change it on "
                                  "the profile page before using the API.")
        elif not request.user.is_authenticated:
            return _unauthorised("Authentication required: send 'Authorization: Bearer <token>' "
                                 "(see docs/api.md), or a session cookie from /login/.")
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


def multipart_put(request):
    """(data, files) of a multipart PUT body: Django parses multipart only for POST."""
    if not request.content_type.startswith("multipart/form-data"):
        raise MultiPartParserError("Send the masks as multipart/form-data.")
    return request.parse_file_upload(request.META, request)
