from django.urls import path

from core import data_request_pages as pages

urlpatterns = [
    path("data-requests/", pages.data_requests_page, name="data-requests"),
    path("data-requests/rows", pages.data_request_rows, name="data-request-rows"),
    path(
        "data-requests/<uuid:pk>/download",
        pages.data_request_download,
        name="data-request-download",
    ),
    path("me/data", pages.my_data, name="my-data"),
    path(
        "operators/<uuid:operator_pk>/withdraw-consent",
        pages.consent_withdraw,
        name="consent-withdraw",
    ),
]
