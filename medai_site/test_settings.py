"""Settings for pytest: the ``test`` profile (real PostgreSQL and Redis on 127.0.0.1)."""

import os

os.environ.setdefault("MEDAI_PROFILE", "test")

from .settings import *  # noqa: F403

# One test database per pytest process: several runs (developers' terminals, CI's parallel
# jobs) on one PostgreSQL must not create and drop each other's database mid-run.
DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get(  # noqa: F405
    "MEDAI_TEST_DATABASE", f"test_medai_{os.getpid()}"
)
