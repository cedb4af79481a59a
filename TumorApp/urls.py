"""URLs of the app: pages, the JSON API, and redirects from the original .html paths."""
from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from .accounts import views as account_views
from .analyses import api, views
from .corrections import views as correction_views
from .series import api as series_api
from .series import views as series_views
from .pacs import api as pacs_api
from .pacs import views as pacs_views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("detect/", views.detect, name="detect"),
    path("analyses/", views.history, name="history"),
    path("analyses/<int:pk>/", views.analysis_detail, name="analysis"),
    path("analyses/<int:pk>/report/", views.analysis_report, name="analysis-report"),
    path("analyses/<int:pk>/delete/", views.analysis_delete, name="analysis-delete"),
    path("analyses/<int:pk>/images/<slug:name>.png", views.analysis_image, name="analysis-image"),
    path("profile/", account_views.profile, name="profile"),
    path("profile/tokens/", account_views.api_token_create, name="api-token-create"),
    path("profile/tokens/<int:pk>/revoke/", account_views.api_token_revoke, name="api-token-revoke"),
    path("audit/", account_views.audit_log, name="audit"),
    path("api/analyses/", api.analyses, name="api-analyses"),
    path("api/analyses/<int:pk>/", api.analysis, name="api-analysis"),
    # Correcting the outline (issue 10): the editor's data and the save.
    path("api/analyses/<int:pk>/masks/", api.analysis_masks, name="api-analysis-masks"),
    path("analyses/<int:pk>/labels/<str:which>.png", correction_views.labels, name="analysis-labels"),
    path("analyses/<int:pk>/slice-hu.bin", correction_views.slice_hu, name="analysis-slice-hu"),
    # Whole CT series (issue 11).
    path("series/new/", series_views.series_new, name="series-new"),
    path("series/<int:pk>/", series_views.series_detail, name="series"),
    path("series/<int:pk>/report/", series_views.series_report, name="series-report"),
    path("series/<int:pk>/slices/<int:index>.png", series_views.series_slice, name="series-slice"),
    path("series/<int:pk>/export/", series_views.series_export, name="series-export"),
    # Correcting a series (issue 20): the editor's data and saves, the API's whole-volume PUT.
    path("series/<int:pk>/slices/<int:index>/labels.png", series_views.series_slice_labels, name="series-slice-labels"),
    path("series/<int:pk>/slices/<int:index>/hu.bin", series_views.series_slice_hu, name="series-slice-hu"),
    path("series/<int:pk>/slices/labels/", series_api.series_slices_labels, name="series-slices-labels"),
    path("series/<int:pk>/slices/interpolate/", series_api.series_interpolate, name="series-interpolate"),
    path("series/<int:pk>/lesions/<int:number>/remove/", series_api.series_remove_lesion,
         name="series-remove-lesion"),
    path("api/series/<int:pk>/labels/", series_api.api_series_labels, name="api-series-labels"),
    path("series/<int:pk>/delete/", series_views.series_delete, name="series-delete"),
    path("api/series/", series_api.api_series_list, name="api-series-list"),
    path("api/series/<int:pk>/", series_api.api_series, name="api-series"),
    path("api/series/<int:pk>/export/", series_api.api_series_export, name="api-series-export"),
    # PACS over DICOMweb (issue 19).
    path("pacs/", pacs_views.search, name="pacs-search"),
    path("pacs/retrieve/", pacs_views.retrieve, name="pacs-retrieve"),
    path("series/<int:pk>/send/", pacs_views.send, name="series-send"),
    path("analyses/<int:pk>/send/", pacs_views.send_analysis, name="analysis-send"),
    path("api/pacs/series/", pacs_api.series_search, name="api-pacs-series"),
    path("api/pacs/retrieve/", pacs_api.retrieve, name="api-pacs-retrieve"),
    path("api/series/<int:pk>/send/", pacs_api.send, name="api-series-send"),
    path("api/analyses/<int:pk>/send/", pacs_api.send_analysis, name="api-analysis-send"),
    # The original application's page names.
    path("index.html", RedirectView.as_view(pattern_name="home", permanent=True)),
    path("AdminLogin.html", RedirectView.as_view(pattern_name="login", permanent=True)),
    path("Detection.html", RedirectView.as_view(pattern_name="detect", permanent=True)),
    path("UpdateProfile.html", RedirectView.as_view(pattern_name="profile", permanent=True)),
]
