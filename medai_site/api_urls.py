"""The API's own pages: schema (/api/schema/), docs, health (/healthz, /readyz) and the API's 404.

The versioned operations (/api/v1/...) are each app's ``api/urls.py``, composed into the ``api``
namespace by the root URLconf (medai_site.urls).
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import health
from .errors import error_body


@csrf_exempt  # answers the same 404 to any method; changes nothing, so there is nothing to forge
def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other /api/ path: the API's error shape, not the browser's 404 page."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("healthz", health.LivenessApi.as_view(), name="healthz"),
    path("readyz", health.ReadinessApi.as_view(), name="readyz"),
    # Last of everything under /api/: the root URLconf includes this after the versioned API.
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
]
