"""The Django admin: every model of core, teleop and evaluation is there with useful columns,
filters and search; every changelist, filter, add and change page answers with realistic
data; secrets and personal data stay out of lists and searches; admin writes are audited."""

import re
from collections import Counter
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import ForeignKey, OneToOneField
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.models import (
    AuditEvent,
    DataRequest,
    IdempotencyRecord,
    Operator,
    OperatorIdentity,
    RobotAPIKey,
    Task,
    TaskVersion,
    Team,
    ThrottleWindow,
    WorkerHeartbeat,
)
from core.services import data_requests, idempotency, operators
from evaluation.models import (
    Benchmark,
    BenchmarkCell,
    Campaign,
    CampaignCell,
    LeaderboardSnapshot,
    PolicyVersion,
    Trial,
    TrialReport,
)
from evaluation.services import leaderboards
from teleop import datasets
from teleop.models import (
    CollectionProtocol,
    DatasetExport,
    DatasetView,
    DatasetViewVersion,
    Episode,
    Label,
    ProtocolTarget,
    Session,
    Upload,
    UploadPart,
)
from teleop.services import labels, protocols, sessions
from tests.core.factories import make_user, superuser
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
)
from tests.teleop.recordings import ready_episode_row

APPS = ("core", "teleop", "evaluation")

# Join rows edited or shown only as inlines of their parent: model -> the parent's model.
INLINE_ONLY = {
    ProtocolTarget: CollectionProtocol,
    BenchmarkCell: Benchmark,
    CampaignCell: Campaign,
    UploadPart: Upload,
}

# Made only by the services (checks, hashes, schedules, history): no add page on purpose.
ADD_DISABLED = {
    RobotAPIKey,
    TaskVersion,
    AuditEvent,
    IdempotencyRecord,
    Session,
    Episode,
    Label,
    Upload,
    DatasetView,
    DatasetViewVersion,
    DatasetExport,
    PolicyVersion,
    Trial,
    TrialReport,
    LeaderboardSnapshot,
    WorkerHeartbeat,
    ThrottleWindow,
    DataRequest,
}

# Created on a page that checks them (tests/core/test_admin_refusals.py): "Add" leads there.
ADDED_ON_A_PAGE = {
    Task: "/tasks/new",
    Benchmark: "/benchmarks/new",
    Campaign: "/campaigns/new",
}

IDENTITY_NAME = "Ada Lovelace"
IDENTITY_EMAIL = "ada.lovelace@example.org"


def _app_models():
    return [m for label in APPS for m in apps.get_app_config(label).get_models()]


REGISTERED = [m for m in _app_models() if m not in INLINE_ONLY]


def _model_id(model):
    return model._meta.label


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _populate(world):
    """One row (or more) of every model, made through the real services."""
    a = world.a
    operator = operators.create_operator(
        actor=a.admin,
        team=a.team,
        code="OP-ADA",
        full_name=IDENTITY_NAME,
        email=IDENTITY_EMAIL,
        consent_version="consent-v1",
    )
    data_requests.request_access(actor=a.admin, operator=operator)
    record = idempotency.begin_idempotent_request(
        principal="user:x", key="key-1", fingerprint="f" * 64, method="POST", path="/api/x/"
    )
    idempotency.complete_idempotent_request(record=record, status=201, body={"ok": True})

    version = a.task.versions.get()
    conditions = make_conditions(a)
    protocol = protocols.create_protocol(
        actor=a.admin,
        team=a.team,
        name="cube data",
        task_version=version,
        targets=[(conditions[0], 5), (conditions[1], 5)],
    )
    session = sessions.open_session(
        actor=a.operator,
        robot=a.robot,
        task_version=version,
        operator_code="OP-ADA",
        protocol=protocol,
    )
    episodes = [ready_episode_row(session, condition=c) for c in conditions]
    labels.label_episode(
        actor=a.operator, episode=episodes[0], outcome="success", stages_reached=["reach"]
    )
    labels.label_episode(actor=a.operator, episode=episodes[0], outcome="failure")
    for episode in episodes:
        upload = Upload.objects.create(
            episode=episode,
            length=10,
            offset=10,
            state=Upload.State.COMPLETE,
            expires_at=timezone.now() + timedelta(hours=1),
            completed_at=timezone.now(),
        )
        UploadPart.objects.create(
            upload=upload, offset=0, size_bytes=10, key=f"uploads/{upload.pk}/0"
        )
    WorkerHeartbeat.objects.create(
        worker_id="worker-1", host="jobs-1.internal", pid=4242, last_seen=timezone.now()
    )
    ThrottleWindow.objects.create(key="throttle_robot_robot:1", window_start=1, hits=3)
    view = datasets.create_view(actor=a.researcher, team=a.team, name="all cube episodes")
    datasets.start_export(actor=a.researcher, version=view.versions.get(), format="lerobot")

    policy_versions = [make_policy_version(a), make_policy_version(a)]
    benchmark = make_benchmark(a, task_versions=[version], conditions=conditions)
    campaign = make_campaign(a, policy_versions=policy_versions, benchmark=benchmark)
    play_campaign(campaign, a.robot, lambda trial: {"outcome": "success"})
    leaderboards.refresh_leaderboard(scope="campaign", object_id=campaign.pk)
    leaderboards.refresh_leaderboard(scope="benchmark", object_id=benchmark.pk)
    # Another team's campaign, started and not played: filters by campaign have a choice.
    make_campaign(world.b, policy_versions=[make_policy_version(world.b)])


@pytest.fixture
def root(world, client):
    _populate(world)
    user = superuser()
    client.force_login(user)
    return user


def _shape(sql: str) -> str:
    """A query with its literals blanked, so the same query for another row compares equal."""
    return re.sub(r"'[^']*'|\b\d+(\.\d+)?\b|\b[0-9a-f]{32}\b", "?", sql)


def _assert_no_repeated_queries(queries, what):
    # The changelist counts its rows twice (filtered and in all); a row is fetched once.
    shapes = Counter(
        _shape(q["sql"])
        for q in queries
        if q["sql"].startswith("SELECT") and not q["sql"].startswith("SELECT COUNT(")
    )
    repeated = [sql for sql, n in shapes.items() if n > 1]
    assert not repeated, f"{what}: a query per row (N+1): {repeated[0][:300]}"


# --- Configuration --------------------------------------------------------------------------


def test_every_model_is_registered_with_columns_and_search():
    registry = admin.site._registry
    for model in _app_models():
        if model in INLINE_ONLY:
            assert model not in registry, f"{model.__name__} is listed as inline-only"
            parent_admin = registry[INLINE_ONLY[model]]
            assert model in [inline.model for inline in parent_admin.inlines], (
                f"{model.__name__} is not an inline of {INLINE_ONLY[model].__name__}"
            )
            continue
        assert model in registry, f"{model._meta.label} is not in the admin"
        model_admin = registry[model]
        assert list(model_admin.list_display) not in ([], ["__str__"]), model.__name__
        assert len(model_admin.list_display) >= 3, model.__name__
        assert model_admin.search_fields, f"{model.__name__} has no search"


@pytest.mark.parametrize("model", REGISTERED, ids=_model_id)
def test_foreign_key_columns_are_selected_with_the_rows(model):
    model_admin = admin.site._registry[model]
    selected = model_admin.list_select_related
    for name in model_admin.list_display:
        try:
            field = model._meta.get_field(name)
        except Exception:
            continue
        if isinstance(field, ForeignKey | OneToOneField):
            assert selected is True or any(
                path == name or path.startswith(f"{name}__") for path in selected
            ), f"{model.__name__}.{name} is shown but not in list_select_related"


def test_secrets_and_personal_data_are_neither_columns_nor_searched():
    for model in _app_models():
        if model in INLINE_ONLY:
            continue
        model_admin = admin.site._registry[model]
        columns = set(model_admin.list_display)
        searched = {s.lstrip("^=@").split("__")[-1] for s in model_admin.search_fields}
        assert "key_hash" not in columns | searched, model.__name__
        assert not {"full_name", "email"} & columns, model.__name__
        assert "full_name" not in searched, model.__name__
    assert admin.site._registry[OperatorIdentity].search_fields == ["operator__code", "=email"]


def test_episodes_are_never_deleted_through_the_admin(root, client):
    episode = Episode.objects.first()
    assert client.get(_url(Episode, "delete", episode.pk)).status_code == 403
    response = client.get(_url(Episode, "changelist"))
    assert "delete_selected" not in response.content.decode()


# --- Every page -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", REGISTERED, ids=_model_id)
def test_changelist_search_filters_add_and_change_pages(root, client, model):
    model_admin = admin.site._registry[model]
    changelist = _url(model, "changelist")

    with CaptureQueriesContext(connection) as queries:
        response = client.get(changelist)
    assert response.status_code == 200
    cl = response.context["cl"]
    assert cl.result_count > 0, f"no {model.__name__} rows to show"
    _assert_no_repeated_queries(queries.captured_queries, f"{model.__name__} changelist")

    response = client.get(changelist, {"q": "x"})
    assert response.status_code == 200, "search failed"

    # The first real choice of each filter, alone and with a search.
    assert len(cl.filter_specs) == len(model_admin.list_filter)
    for spec in cl.filter_specs:
        choice = next(c for c in spec.choices(cl) if not c["selected"])
        response = client.get(changelist + choice["query_string"])
        assert response.status_code == 200, f"filter {spec.title}: {choice['query_string']}"
        response = client.get(changelist + choice["query_string"] + "&q=x")
        assert response.status_code == 200, f"filter {spec.title} with a search"
    if model_admin.date_hierarchy:
        year = timezone.localtime().year
        response = client.get(changelist, {f"{model_admin.date_hierarchy}__year": year})
        assert response.status_code == 200
        assert response.context["cl"].result_count > 0

    response = client.get(_url(model, "add"))
    if model in ADDED_ON_A_PAGE:
        assert response.status_code == 302 and response["Location"] == ADDED_ON_A_PAGE[model]
    else:
        assert response.status_code == (403 if model in ADD_DISABLED else 200)

    row = model._default_manager.first()
    response = client.get(_url(model, "change", row.pk))
    assert response.status_code == 200


# --- Secrets and personal data ----------------------------------------------------------------


def test_lists_show_operator_codes_never_identities_or_key_hashes(root, client):
    for model in (Operator, OperatorIdentity, Session, Episode, TrialReport, AuditEvent):
        page = client.get(_url(model, "changelist")).content.decode()
        assert IDENTITY_NAME not in page and IDENTITY_EMAIL not in page, model.__name__
    assert "OP-ADA" in client.get(_url(Session, "changelist")).content.decode()
    assert "OP-ADA" in client.get(_url(Episode, "changelist")).content.decode()

    key = RobotAPIKey.objects.first()
    for url in (_url(RobotAPIKey, "changelist"), _url(RobotAPIKey, "change", key.pk)):
        page = client.get(url).content.decode()
        assert key.prefix in page
        assert key.key_hash not in page
    # A search by the hash finds nothing.
    response = client.get(_url(RobotAPIKey, "changelist"), {"q": key.key_hash})
    assert response.context["cl"].result_count == 0


def test_an_email_finds_its_identity_only_whole(root, client):
    changelist = _url(OperatorIdentity, "changelist")
    assert client.get(changelist, {"q": IDENTITY_EMAIL}).context["cl"].result_count == 1
    assert client.get(changelist, {"q": "lovelace"}).context["cl"].result_count == 0


def test_identities_are_for_superusers_only(root, client):
    staff = make_user()
    staff.is_staff = True
    staff.save()
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="core"))
    client.force_login(staff)
    assert client.get(_url(OperatorIdentity, "changelist")).status_code == 403
    operator = Operator.objects.get(code="OP-ADA")
    page = client.get(_url(Operator, "change", operator.pk))
    assert page.status_code == 200
    assert IDENTITY_NAME not in page.content.decode()


# --- Audit ------------------------------------------------------------------------------------


def test_a_team_added_with_a_member_is_audited_both(root, client, world):
    member = make_user()
    response = client.post(
        _url(Team, "add"),
        {
            "name": "Field lab",
            "slug": "field-lab",
            "erased_episodes": "keep",
            "default_licence": "internal",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": member.pk,
            "memberships-0-role": "operator",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    team = Team.objects.get(slug="field-lab")
    events = AuditEvent.objects.filter(team=team, actor_user=root)
    assert {(e.action, e.object_type) for e in events} == {
        ("create", "core.team"),
        ("create", "core.membership"),
    }


def test_identity_edits_are_audited_without_personal_data(root, client):
    identity = OperatorIdentity.objects.get(operator__code="OP-ADA")
    response = client.post(
        _url(OperatorIdentity, "change", identity.pk),
        {
            "operator": identity.operator_id,
            "full_name": "Ada King",
            "email": IDENTITY_EMAIL,
            "consent_given_at_0": "",
            "consent_given_at_1": "",
            "consent_version": "consent-v2",
            "consent_withdrawn_at_0": "",
            "consent_withdrawn_at_1": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(object_type="core.operatoridentity", action="update")
    assert event.team_id == identity.operator.team_id
    assert event.before["consent_version"] == "consent-v1"
    assert event.after["consent_version"] == "consent-v2"
    recorded = f"{event.before} {event.after} {event.object_repr}"
    assert "Ada" not in recorded and IDENTITY_EMAIL not in recorded


def test_a_robot_shared_in_the_admin_is_audited_with_its_sharing(root, client, world):
    robot = world.a.robot
    data = {
        "team": robot.team_id,
        "visibility": "shared",
        "shared_with": [world.b.team.pk],
        "embodiment": robot.embodiment_id,
        "name": robot.name,
        "site": "",
        "serial": "",
        "status": "active",
        "software_version": "",
        "api_keys-TOTAL_FORMS": "1",
        "api_keys-INITIAL_FORMS": "1",
        "api_keys-MIN_NUM_FORMS": "0",
        "api_keys-MAX_NUM_FORMS": "1000",
        "api_keys-0-id": robot.api_keys.get().pk,
        "api_keys-0-robot": robot.pk,
    }
    response = client.post(_url(type(robot), "change", robot.pk), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(object_id=str(robot.pk), action="update", actor_user=root)
    assert event.before["shared_with"] == [] and event.before["visibility"] == "private"
    assert event.after["shared_with"] == [str(world.b.team)]  # as services.snapshot writes it
    assert event.after["visibility"] == "shared"


def test_sessions_are_closed_from_the_admin_through_the_service(root, client):
    session = Session.objects.get(status=Session.Status.OPEN)
    response = client.post(
        _url(Session, "changelist"),
        {"action": "close", admin.helpers.ACTION_CHECKBOX_NAME: [session.pk]},
    )
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.status == Session.Status.CLOSED and session.closed_at is not None
    assert AuditEvent.objects.filter(object_id=str(session.pk), actor_user=root).exists()


def test_erasing_an_identity_from_the_admin_goes_through_the_service(root, client):
    operator = Operator.objects.get(code="OP-ADA")
    response = client.post(
        _url(Operator, "changelist"),
        {
            "action": "erase_identity",
            admin.helpers.ACTION_CHECKBOX_NAME: [operator.pk],
            "confirm": "yes",  # tests/teleop/test_confirmations.py: it asks first
        },
    )
    assert response.status_code == 302
    assert not OperatorIdentity.objects.filter(operator=operator).exists()
    assert AuditEvent.objects.filter(action="erase", object_id=str(operator.pk)).exists()


def test_a_name_with_a_bidi_control_is_a_form_error_not_a_500(root, client):
    team = Team.objects.first()
    response = client.post(
        _url(Team, "change", team.pk), {"name": "evil\u202egnp.exe", "slug": team.slug}
    )
    assert response.status_code == 200
    assert "Bidirectional control characters" in response.content.decode()
    team.refresh_from_db()
    assert "\u202e" not in team.name
