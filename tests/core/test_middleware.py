"""Request guards: what pages and the API answer while the database is away."""

import contextlib

import pytest
from django.db import OperationalError, connection
from django.test import Client

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def _database_away():
    """Every query fails as it does while PostgreSQL restarts."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(refuse):
        yield


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", ["/", "/episodes/", "/leaderboards/"])
def test_pages_answer_an_html_503_with_retry_after_while_the_database_is_away(world, path):
    client = _signed_in(world.a.operator)
    with _database_away():
        response = client.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    assert "back in a moment" in response.content.decode()


def test_the_api_keeps_answering_json_while_the_database_is_away(world):
    client = _signed_in(world.a.operator)
    with _database_away():
        response = client.get("/api/v1/whoami")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "database_unavailable"
