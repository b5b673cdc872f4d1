"""Idempotency-Key: retries are harmless, reuse with another body is refused."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.db import OperationalError
from django.utils import timezone
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.models import AuditEvent, Condition, IdempotencyRecord

pytestmark = pytest.mark.django_db


def _body(world, level="dim"):
    return {"team": world.a.team.slug, "factor": "lighting", "level": level}


def test_same_key_same_body_replays_the_stored_answer(api, world):
    client = api(world.a.admin)
    first = client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Condition.objects.filter(factor="lighting").count() == 1


def test_same_key_other_body_is_422(api, world):
    client = api(world.a.admin)
    client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-2")
    response = client.post(
        "/api/v1/conditions/", _body(world, "bright"), HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert response.status_code == 422
    assert response.json()["error"] == "idempotency_key_reused"
    assert not Condition.objects.filter(level="bright").exists()


def test_keys_are_scoped_to_the_caller(api, world):
    from core.services import teams

    teams.add_member(actor=None, team=world.a.team, user=world.b.admin, role="admin")
    api(world.a.admin).post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-3")
    other = api(world.b.admin).post(
        "/api/v1/conditions/", _body(world, "bright"), HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert other.status_code == 201  # another caller's key space


def test_a_refusal_is_replayed_too(api, world):
    client = api(world.a.admin)
    body = _body(world) | {"level": "not a slug"}
    first = client.post("/api/v1/conditions/", body, HTTP_IDEMPOTENCY_KEY="k-4")
    again = client.post("/api/v1/conditions/", body, HTTP_IDEMPOTENCY_KEY="k-4")
    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"


def test_request_in_flight_with_the_key_is_409(api, world):
    from core.api.idempotency import fingerprint
    from core.services import idempotency

    idempotency.begin_idempotent_request(
        principal=f"user:{world.a.admin.pk}",
        key="k-5",
        fingerprint=fingerprint("POST", "/api/v1/conditions/", _body(world)),
        method="POST",
        path="/api/v1/conditions/",
    )
    response = api(world.a.admin).post(
        "/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-5"
    )
    assert response.status_code == 409
    assert response.json()["error"] == "idempotency_key_in_flight"
    assert 1 <= int(response["Retry-After"]) <= 30
    assert not Condition.objects.filter(factor="lighting").exists()


def test_a_failed_request_releases_its_key(api, world, monkeypatch):
    from core.services import conditions

    def boom(**kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(conditions, "create_condition", boom)
    client = api(world.a.admin)
    client.raise_request_exception = False
    assert (
        client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-6").status_code
        == 500
    )
    assert not IdempotencyRecord.objects.filter(key="k-6").exists()


def _claim(world, key: str) -> IdempotencyRecord:
    """A claim on `key` as a request that then died (no completion, no release) leaves it."""
    from core.api.idempotency import fingerprint
    from core.services import idempotency

    return idempotency.begin_idempotent_request(
        principal=f"user:{world.a.admin.pk}",
        key=key,
        fingerprint=fingerprint("POST", "/api/v1/conditions/", _body(world)),
        method="POST",
        path="/api/v1/conditions/",
    )


def test_a_claim_is_a_short_lease_and_a_dead_requests_key_is_free_after_it(api, world, settings):
    settings.IDEMPOTENCY_IN_FLIGHT_LEASE_S = 30
    record = _claim(world, "k-lease")
    lease_s = (record.expires_at - record.created_at).total_seconds()
    assert 29 <= lease_s <= 31  # not the answer's 24 hours
    client = api(world.a.admin)
    assert (
        client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-lease").status_code
        == 409
    )
    # Thirty seconds later the request that claimed the key has not answered: it died.
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        created_at=timezone.now() - timedelta(seconds=31),
        expires_at=timezone.now() - timedelta(seconds=1),
    )
    retried = client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-lease")
    assert retried.status_code == 201
    stored = IdempotencyRecord.objects.get(key="k-lease")
    assert stored.state == IdempotencyRecord.State.COMPLETED
    assert stored.expires_at - timezone.now() > timedelta(hours=23)  # the answer is kept
    again = client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-lease")
    assert again["Idempotent-Replayed"] == "true"
    assert Condition.objects.filter(factor="lighting").count() == 1


def test_the_in_flight_retry_after_never_points_past_the_lease(api, world, settings):
    record = _claim(world, "k-soon")
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        expires_at=timezone.now() + timedelta(milliseconds=300)
    )
    response = api(world.a.admin).post(
        "/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-soon"
    )
    assert response.status_code == 409 and response["Retry-After"] == "1"


def test_a_request_that_lost_the_database_releases_its_key(api, world, monkeypatch):
    from core.services import conditions

    real = conditions.create_condition
    calls = []

    def database_gone_once(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(conditions, "create_condition", database_gone_once)
    client = api(world.a.admin)
    first = client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-db")
    assert first.status_code == 503 and first["Retry-After"]
    retried = client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-db")
    assert retried.status_code == 201
    assert Condition.objects.filter(factor="lighting").count() == 1


def test_when_even_the_release_fails_the_answer_is_the_503_and_the_lease_frees_the_key(
    api, world, monkeypatch
):
    from core.services import conditions, idempotency

    def database_gone(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(conditions, "create_condition", database_gone)
    monkeypatch.setattr(idempotency, "release_idempotent_request", database_gone)
    response = api(world.a.admin).post(
        "/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-gone"
    )
    assert response.status_code == 503
    record = IdempotencyRecord.objects.get(key="k-gone")
    assert record.state == IdempotencyRecord.State.IN_FLIGHT
    assert record.expires_at - timezone.now() <= timedelta(seconds=30)


def _login(base_url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    session.get(f"{base_url}/admin/login/", timeout=10)
    response = session.post(
        f"{base_url}/admin/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        timeout=10,
    )
    assert "sessionid" in session.cookies, response.text[:300]
    return session


@pytest.mark.slow
def test_fifty_concurrent_identical_posts_have_exactly_one_effect(transactional_db, live_server):
    from tests.core import factories

    world = factories.build_world()
    world.a.admin.is_staff = True  # the admin login page is our session login in this test
    world.a.admin.save()
    session = _login(live_server.url, world.a.admin.username, "pw")
    headers = {"X-CSRFToken": session.cookies["csrftoken"], "Idempotency-Key": "burst-1"}

    def post(_):
        # One session per thread (a requests.Session is not thread-safe), and a client that
        # retries a dropped connection with the same key, as robots do: fifty connects at once
        # can overflow the test server's accept queue on a loaded machine, and a retry is
        # exactly what the key makes harmless.
        with requests.Session() as client:
            client.cookies.update(session.cookies)
            retry = Retry(total=3, status=0, allowed_methods=None, backoff_factor=0.2)
            client.mount("http://", HTTPAdapter(max_retries=retry))
            response = client.post(
                f"{live_server.url}/api/v1/conditions/",
                json=_body(world),
                headers=headers,
                timeout=30,
            )
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(post, range(50)))
    statuses = [status for status, _ in results]
    assert set(statuses) <= {201, 409}, results
    assert statuses.count(201) >= 1
    assert Condition.objects.filter(factor="lighting", level="dim").count() == 1
    created_ids = {body["id"] for status, body in results if status == 201}
    assert len(created_ids) == 1  # every 201 is the same object, replayed
    assert AuditEvent.objects.filter(object_type="core.condition").count() == 1

    changed = session.post(
        f"{live_server.url}/api/v1/conditions/",
        json=_body(world, "bright"),
        headers=headers,
        timeout=30,
    )
    assert changed.status_code == 422
