"""Irreversible actions ask first: closing a session on its page, erasing an operator's
identity in the admin. Without the confirmation nothing changes."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent, OperatorIdentity
from core.services import operators
from teleop.models import Session

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_closing_a_session_asks_first_and_closes_only_when_confirmed(world, session):
    client = _client(world.a.operator)
    url = f"/teleop/sessions/{session.pk}/close"
    asked = client.post(url)
    page = asked.content.decode()
    assert asked.status_code == 200
    assert f"Close session {session.code}?" in page and "cannot be undone" in page
    assert 'name="confirm" value="yes"' in page
    session.refresh_from_db()
    assert session.status == Session.Status.OPEN

    assert client.post(url, {"confirm": "no"}).status_code == 200
    session.refresh_from_db()
    assert session.status == Session.Status.OPEN

    closed = client.post(url, {"confirm": "yes"})
    assert closed.status_code == 302
    session.refresh_from_db()
    assert session.status == Session.Status.CLOSED


def test_another_team_cannot_reach_the_confirmation(world, session):
    assert _client(world.b.admin).post(f"/teleop/sessions/{session.pk}/close").status_code == 404


@pytest.fixture
def identified_operator(world):
    return operators.create_operator(
        actor=world.a.admin,
        team=world.a.team,
        code="OP-H13",
        full_name="Ada Lovelace",
        email="ada@example.org",
        consent_version="consent-v1",
    )


def test_erasing_an_identity_in_the_admin_asks_first_and_erases_only_when_confirmed(
    identified_operator, django_user_model
):
    root = django_user_model.objects.create_superuser("root-h13", "r@example.org", "pw")
    client = _client(root)
    url = reverse("admin:core_operator_changelist")
    selected = {
        "action": "erase_identity",
        admin.helpers.ACTION_CHECKBOX_NAME: [identified_operator.pk],
    }
    asked = client.post(url, selected)
    page = asked.content.decode()
    assert asked.status_code == 200
    assert "cannot be undone" in page and identified_operator.code in page
    assert OperatorIdentity.objects.filter(operator=identified_operator).exists()
    assert not AuditEvent.objects.filter(action="erase").exists()

    done = client.post(url, {**selected, "confirm": "yes"})
    assert done.status_code == 302
    assert not OperatorIdentity.objects.filter(operator=identified_operator).exists()
    assert AuditEvent.objects.filter(action="erase", object_id=str(identified_operator.pk)).exists()
