from django.apps import AppConfig


class MedaiSiteConfig(AppConfig):
    name = "medai_site"
    verbose_name = "MedAI platform"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
