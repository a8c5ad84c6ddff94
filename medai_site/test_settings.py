"""Settings for pytest: the ``test`` profile (real PostgreSQL and Redis on 127.0.0.1)."""

import os

os.environ.setdefault("MEDAI_PROFILE", "test")

from .settings import *  # noqa: F403
