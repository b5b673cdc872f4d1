"""Health endpoints: liveness needs nothing, readiness needs the database; neither is sent
to HTTPS (load balancers probe over plain HTTP)."""

import pytest
from django.db import OperationalError
from django.test import Client


@pytest.mark.django_db
def test_ready_answers_200_when_the_database_answers():
    response = Client().get("/healthz/ready")
    assert response.status_code == 200 and response.content == b"ok\n"


def test_live_answers_200_without_touching_the_database():
    # No django_db mark: any query here would raise.
    response = Client().get("/healthz/live")
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_ready_is_a_503_with_retry_after_while_the_database_is_away(monkeypatch):
    from django.db import connection

    def refuse():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = Client().get("/healthz/ready")
    assert response.status_code == 503 and response["Retry-After"].isdigit()


def test_health_is_not_redirected_to_https(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get("/healthz/live").status_code == 200
    assert Client().get("/api/v1/version").status_code == 301
