"""The clinician's pages (server-rendered)."""

urlpatterns: list = []
