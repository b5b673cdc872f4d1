"""Shared fixtures: hermetic file storage, and the domain built through the real services."""

import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.core import factories

# The local S3 server and the `s3_storage` fixture (tests/object_storage.py); every answer a
# test client gets from /api/v1/ checked against the OpenAPI schema (tests/openapi_conformance.py).
pytest_plugins = ["tests.object_storage", "tests.openapi_conformance"]

# Playwright's sync API and the threaded live server run inside pytest-django's event loop
# guard; see design.md, known traps.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _media_storage(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _no_persistent_connections(settings):
    # Live-server threads would keep their connections open for a minute, and the test
    # database could not be dropped until they close.
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness (~0.3 s a user) buys nothing in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# Tests count throttles in memory: the shared database cache the settings choose needs a
# database, which most tests (and the schema test's loading at collection) have no business
# touching. tests/core/test_shared_state.py checks that default, across two processes.
settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(autouse=True)
def _fresh_throttles():
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def world(db):
    """Two teams, each with an admin, an operator, a researcher, an embodiment, a robot with a
    key, and a task; plus a stranger who belongs to no team."""
    return factories.build_world()


@pytest.fixture
def api():
    """An API client factory: `api(user)` signs a person in, `api(key=...)` sends a robot's
    key, `api()` is anonymous."""

    def make(user=None, *, key=None):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        if key is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


@pytest.fixture(scope="session", autouse=True)
def _end_stray_sessions(django_db_setup, django_db_blocker):
    """Before the test databases are dropped, end the PostgreSQL sessions still open on them.

    The live server's request threads close their connection when the browser closes its
    keep-alive socket, which can come after the last test; the drop then failed with "is
    being accessed by other users" and left the database behind for the next run."""
    yield
    from django.db import OperationalError, connection

    if connection.vendor != "postgresql" or not connection.settings_dict["NAME"].startswith(
        "test_"
    ):
        return  # a run with no database test never switched to a test database
    try:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    except OperationalError:
        pass  # nothing to end where nothing can connect
