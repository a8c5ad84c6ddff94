"""URL map. Pages live in medai_site/page_urls.py, the REST API in medai_site/api_urls.py."""

from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

from medai_site.metrics import metrics_view

# The admin requires a verified second factor (TOTP) on top of the password (HIPAA 164.312(d)).
admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),  # Prometheus; basic auth token or staff
    path("admin/", admin.site.urls),
    path("", include("medai_site.api_urls")),
    path("", include("medai_site.page_urls")),
]

# Friendly error pages for the browser (the API answers its own JSON errors).
handler403 = "medai_site.views.error_403"
handler404 = "medai_site.views.error_404"
handler500 = "medai_site.views.error_500"
