"""URL map. Pages live in medai_site/page_urls.py, the REST API in medai_site/api_urls.py."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("medai_site.api_urls")),
    path("", include("medai_site.page_urls")),
]
