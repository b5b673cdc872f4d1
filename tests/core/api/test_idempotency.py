"""Idempotency-Key: retries are harmless, reuse with another body is refused."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
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
    from core import services

    services.add_member(actor=None, team=world.a.team, user=world.b.admin, role="admin")
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
    from core import services
    from core.api.idempotency import fingerprint

    services.begin_idempotent_request(
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
    assert not Condition.objects.filter(factor="lighting").exists()


def test_a_failed_request_releases_its_key(api, world, monkeypatch):
    from core import services

    def boom(**kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(services, "create_condition", boom)
    client = api(world.a.admin)
    client.raise_request_exception = False
    assert (
        client.post("/api/v1/conditions/", _body(world), HTTP_IDEMPOTENCY_KEY="k-6").status_code
        == 500
    )
    assert not IdempotencyRecord.objects.filter(key="k-6").exists()


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
