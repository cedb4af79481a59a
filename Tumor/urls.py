"""Project URLs: the app, and Django's admin (staff only) for accounts and lockouts."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("TumorApp.urls")),
]

handler400 = "TumorApp.error_views.bad_request"
handler403 = "TumorApp.error_views.permission_denied"
handler404 = "TumorApp.error_views.page_not_found"
handler500 = "TumorApp.error_views.server_error"
