"""Consent and licence per episode: recorded at creation, checked before every export
(docs/privacy.md, "Consent and licence")."""

import hashlib
import uuid

import pytest
from django.test import Client

from core.errors import NotPermitted
from core.models import AuditEvent, Licence, Visibility
from core.services import consent as consent_services
from core.services import operators
from teleop import consent, datasets
from teleop.errors import ConsentRefused
from teleop.models import DatasetExport, Episode
from teleop.services import sessions
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def _operator_session(world, code, *, consent_version="v2", user=None):
    operator = operators.create_operator(
        actor=world.a.admin,
        team=world.a.team,
        code=code,
        user=user,
        full_name=f"Person {code}",
        email=f"{code.lower()}@example.org",
        consent_version=consent_version,
    )
    session = sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )
    return operator, session


def _view(world, episodes, *, name="set", visibility=Visibility.PRIVATE):
    """A view of exactly `episodes` (a view's filters take every ready episode otherwise)."""
    chosen = {str(e.pk) for e in episodes}
    others = Episode.objects.filter(team=world.a.team).exclude(pk__in=chosen)
    return datasets.create_view(
        actor=world.a.researcher,
        team=world.a.team,
        name=name,
        includes=sorted(chosen),
        excludes=[str(pk) for pk in others.values_list("pk", flat=True)],
        visibility=visibility,
    )


def _create_over_api(api, world, session) -> Episode:
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": 10,
        "sha256": hashlib.sha256(b"x").hexdigest(),
    }
    answer = api(key=world.a.robot_key).post("/api/v1/episodes/", body, format="json")
    assert answer.status_code == 201, answer.json()
    return Episode.objects.get(pk=body["id"])


def test_an_episode_records_the_consent_in_force_and_the_teams_default_licence(api, world):
    world.a.team.default_licence = Licence.TEAMS
    world.a.team.save()
    _, session = _operator_session(world, "OP-CV", consent_version="v2")
    episode = _create_over_api(api, world, session)
    assert (episode.consent_version, episode.licence) == ("v2", "teams")
    assert episode.consent_withdrawn_at is None

    _, without = _operator_session(world, "OP-NONE", consent_version="")
    episode = _create_over_api(api, world, without)
    assert (episode.consent_version, episode.licence) == ("", "teams")


def test_an_export_of_episodes_whose_consent_was_withdrawn_is_refused_with_a_message(world):
    operator, session = _operator_session(world, "OP-WD")
    _, other_session = _operator_session(world, "OP-OK")
    mine = [ready_episode_row(session) for _ in range(2)]
    kept = ready_episode_row(other_session)
    version = _view(world, [*mine, kept]).versions.get()

    consent_services.withdraw_consent(actor=world.a.admin, operator=operator)

    for episode in mine:
        episode.refresh_from_db()
        assert episode.consent_withdrawn_at is not None
    kept.refresh_from_db()
    assert kept.consent_withdrawn_at is None
    with pytest.raises(ConsentRefused) as refused:
        datasets.start_export(actor=world.a.researcher, version=version, format="robomimic")
    assert refused.value.detail.startswith(
        "2 of 3 episodes may not be exported for 'internal' use: 2 with consent withdrawn"
    )
    assert sorted(refused.value.fields["episodes"]) == sorted(str(e.pk) for e in mine)
    assert not DatasetExport.objects.exists()
    # A version without them exports.
    clean = _view(world, [kept], name="clean").versions.get()
    datasets.start_export(actor=world.a.researcher, version=clean, format="robomimic")


def test_withdrawal_is_audited_without_personal_data_and_blocks_later_episodes(api, world):
    operator, session = _operator_session(world, "OP-LATER")
    consent_services.withdraw_consent(actor=world.a.admin, operator=operator)
    event = AuditEvent.objects.filter(object_id=str(operator.pk)).first()
    assert event.after == {"consent_withdrawn": True, "episodes_marked": 0}
    assert "Person" not in str(event.after) and "example.org" not in str(event.after)
    # An episode recorded afterwards carries the withdrawal, and no consent version.
    episode = _create_over_api(api, world, session)
    assert episode.consent_withdrawn_at is not None and episode.consent_version == ""
    with pytest.raises(Exception, match="already"):
        consent_services.withdraw_consent(actor=world.a.admin, operator=operator)


def test_an_export_queued_before_the_withdrawal_fails_when_its_job_runs(world):
    operator, session = _operator_session(world, "OP-RACE")
    version = _view(world, [ready_episode_row(session)]).versions.get()
    export = datasets.start_export(actor=world.a.researcher, version=version, format="robomimic")
    consent_services.withdraw_consent(actor=world.a.admin, operator=operator)
    export = datasets.build_export(export_id=export.pk)
    assert export.state == DatasetExport.State.FAILED
    assert "consent withdrawn" in export.error and not export.file


def test_shared_and_public_views_need_the_licence_and_consent_on_record(world):
    _, session = _operator_session(world, "OP-LIC")
    _, unconsented = _operator_session(world, "OP-NOC", consent_version="")
    internal = ready_episode_row(session)
    internal.consent_version = "v2"
    internal.save()
    shared = _view(world, [internal], name="shared", visibility=Visibility.SHARED)
    with pytest.raises(ConsentRefused, match=r"1 licensed for less than 'teams' use"):
        datasets.start_export(
            actor=world.a.researcher, version=shared.versions.get(), format="robomimic"
        )
    # The private view of the same episode exports: internal use.
    private = _view(world, [internal], name="private")
    datasets.start_export(
        actor=world.a.researcher, version=private.versions.get(), format="robomimic"
    )

    assert consent.set_licence(actor=world.a.admin, episodes=[internal], licence="teams") == 1
    datasets.start_export(
        actor=world.a.researcher, version=shared.versions.get(), format="robomimic"
    )
    public = _view(world, [internal], name="public", visibility=Visibility.PUBLIC)
    with pytest.raises(ConsentRefused, match=r"\(the view is public\).*needs public"):
        datasets.start_export(
            actor=world.a.researcher, version=public.versions.get(), format="robomimic"
        )
    consent.set_licence(actor=world.a.admin, episodes=[internal], licence="public")
    datasets.start_export(
        actor=world.a.researcher, version=public.versions.get(), format="robomimic"
    )

    # Licensed public, but no consent on record: not for sharing.
    nobody = ready_episode_row(unconsented)
    consent.set_licence(actor=world.a.admin, episodes=[nobody], licence="public")
    view = _view(world, [nobody], name="nobody", visibility=Visibility.PUBLIC)
    with pytest.raises(ConsentRefused, match="1 with no consent on record"):
        datasets.start_export(
            actor=world.a.researcher, version=view.versions.get(), format="robomimic"
        )


def test_the_api_answers_a_refused_export_409_with_the_message(api, world):
    operator, session = _operator_session(world, "OP-API")
    version = _view(world, [ready_episode_row(session)]).versions.get()
    consent_services.withdraw_consent(actor=world.a.admin, operator=operator)
    answer = api(world.a.researcher).post(
        f"/api/v1/dataset-view-versions/{version.pk}/exports",
        {"format": "robomimic"},
        format="json",
    )
    assert answer.status_code == 409
    body = answer.json()
    assert body["error"] == "consent_refused"
    assert "1 of 1 episodes may not be exported" in body["detail"]
    assert body["fields"]["episodes"] == version.episode_ids


def test_the_export_page_shows_the_refusal(world):
    operator, session = _operator_session(world, "OP-PAGE")
    view = _view(world, [ready_episode_row(session)])
    consent_services.withdraw_consent(actor=world.a.admin, operator=operator)
    client = Client()
    client.force_login(world.a.researcher)
    form = {"format": "robomimic", "images": "raw", "image_size": "84"}
    page = client.post(f"/datasets/{view.pk}/", form)
    assert page.status_code == 400
    assert "1 with consent withdrawn by their operator" in page.content.decode()


def test_the_operator_withdraws_their_own_consent_from_my_data(world):
    operator, session = _operator_session(world, "OP-SELF", user=world.a.operator)
    episode = ready_episode_row(session)
    client = Client()
    client.force_login(world.a.operator)
    page = client.get(f"/operators/{operator.pk}/withdraw-consent")
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    assert (
        client.post(f"/operators/{operator.pk}/withdraw-consent").status_code == 200
    )  # no confirm
    episode.refresh_from_db()
    assert episode.consent_withdrawn_at is None
    answer = client.post(f"/operators/{operator.pk}/withdraw-consent", {"confirm": "yes"})
    assert answer.status_code == 302 and answer["Location"] == "/me/data"
    episode.refresh_from_db()
    assert episode.consent_withdrawn_at is not None
    assert "You withdrew your consent" in client.get("/me/data").content.decode()


def test_another_operator_may_not_withdraw_and_another_teams_admin_gets_404(world):
    operator, session = _operator_session(world, "OP-THEIRS")
    researcher = Client()
    researcher.force_login(world.a.researcher)
    assert researcher.get(f"/operators/{operator.pk}/withdraw-consent").status_code == 403
    stranger = Client()
    stranger.force_login(world.b.admin)
    url = f"/operators/{operator.pk}/withdraw-consent"
    assert stranger.get(url).status_code == 404
    assert stranger.post(url, {"confirm": "yes"}).status_code == 404
    with pytest.raises(NotPermitted):
        consent_services.withdraw_consent(actor=world.b.admin, operator=operator)
    with pytest.raises(NotPermitted):
        consent.set_licence(
            actor=world.b.admin, episodes=[ready_episode_row(session)], licence="public"
        )
    with pytest.raises(NotPermitted):
        consent.set_licence(
            actor=world.a.researcher, episodes=[ready_episode_row(session)], licence="public"
        )
    assert not Episode.objects.exclude(consent_withdrawn_at=None).exists()


def test_admins_set_episode_licences_from_the_django_admin(world):
    from tests.core.factories import superuser

    _, session = _operator_session(world, "OP-ADM")
    episode = ready_episode_row(session)
    client = Client()
    client.force_login(superuser())
    answer = client.post(
        "/admin/teleop/episode/",
        {"action": "licence_public", "_selected_action": [str(episode.pk)]},
    )
    assert answer.status_code == 302
    episode.refresh_from_db()
    assert episode.licence == "public"
    event = AuditEvent.objects.get(object_id=str(episode.pk), action="update")
    assert (event.before, event.after) == ({"licence": "internal"}, {"licence": "public"})
