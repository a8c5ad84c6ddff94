from django.apps import AppConfig


class MedaiSiteConfig(AppConfig):
    name = "medai_site"
    verbose_name = "MedAI platform"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (checks: importing registers them)

        signals.connect()  # roles and activation lost -> API tokens revoked (see signals.py)
        from . import db_health

        db_health.connect()  # after django.db's close_old_connections: see db_health.py
