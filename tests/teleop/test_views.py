"""Recording pages: who sees what, forms with bad input, the viewer's headers."""

import re

import pytest
from django.test import Client

from teleop.models import DatasetView, Episode, Label
from teleop.services import labels
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_pages_need_sign_in(client, world, session):
    for path in ("/", "/teleop/", f"/teleop/sessions/{session.pk}/", "/episodes/", "/datasets/"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_home_lists_open_sessions_and_unlabelled_episodes(world, session):
    ready_episode_row(session)
    page = _client(world.a.operator).get("/").content.decode()
    assert world.a.robot.name in page and "Waiting for a label" in page


def test_console_shows_instruction_criteria_and_episodes(world, session):
    episode = ready_episode_row(session)
    page = _client(world.a.operator).get(f"/teleop/sessions/{session.pk}/").content.decode()
    assert session.task_version.instruction in page
    assert "Gripper above the cube" in page  # a stage of the criteria
    assert f'data-episode-row="{episode.pk}"' in page


def test_another_teams_session_and_episode_are_404(world, session):
    episode = ready_episode_row(session)
    other = _client(world.b.admin)
    assert other.get(f"/teleop/sessions/{session.pk}/").status_code == 404
    assert other.get(f"/episodes/{episode.pk}/").status_code == 404
    assert other.post(f"/episodes/{episode.pk}/label", {"outcome": "success"}).status_code == 404


def test_operator_labels_in_place_and_history_is_kept(world, session):
    episode = ready_episode_row(session)
    client = _client(world.a.operator)
    url = f"/episodes/{episode.pk}/label"
    response = client.post(
        url, {"outcome": "failure", "failure_codes": ["dropped"]}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Label saved" in response.content.decode()
    assert response["HX-Trigger"] == "episodes-changed"
    client.post(
        url, {"outcome": "partial", "stages_reached": ["reach", "grasp"]}, HTTP_HX_REQUEST="true"
    )
    assert [label.outcome for label in Label.objects.order_by("created_at")] == [
        "failure",
        "partial",
    ]


def test_bad_label_input_is_answered_with_a_message_and_nothing_saved(world, session):
    episode = ready_episode_row(session)
    response = _client(world.a.operator).post(
        f"/episodes/{episode.pk}/label",
        {"outcome": "maybe", "stages_reached": ["teleport"]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Label.objects.exists()


def test_discard_without_a_reason_changes_nothing(world, session):
    episode = ready_episode_row(session)
    client = _client(world.a.operator)
    response = client.post(f"/episodes/{episode.pk}/discard", {"reason": ""}, follow=True)
    assert "Say why" in response.content.decode()
    episode.refresh_from_db()
    assert not episode.is_discarded
    client.post(f"/episodes/{episode.pk}/discard", {"reason": "bumped the table"})
    episode.refresh_from_db()
    assert episode.discard_reason == "bumped the table"


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/phish",
        "//evil.example/phish",
        "javascript:alert(1)",
        "http://testserver\\@evil.example/",
    ],
)
def test_label_and_discard_forms_follow_next_only_to_this_sites_pages(world, session, next_url):
    episode = ready_episode_row(session)
    client = _client(world.a.operator)
    own_page = f"/episodes/{episode.pk}/"
    labelled = client.post(
        f"/episodes/{episode.pk}/label", {"outcome": "success", "next": next_url}
    )
    discarded = client.post(
        f"/episodes/{episode.pk}/discard", {"reason": "bumped the table", "next": next_url}
    )
    for response in (labelled, discarded):
        assert response.status_code == 302
        assert response["Location"] == own_page


def test_label_form_goes_back_to_the_page_it_came_from(world, session):
    episode = ready_episode_row(session)
    back = f"http://testserver/teleop/sessions/{session.pk}/"
    response = _client(world.a.operator).post(
        f"/episodes/{episode.pk}/label", {"outcome": "success", "next": back}
    )
    assert response.status_code == 302 and response["Location"] == back


def test_open_session_form_refuses_bad_input(world):
    response = _client(world.a.operator).post("/teleop/", {"robot": "nope"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "is not a valid UUID" in page and "This field is required" in page


def test_episode_page_embeds_the_viewer_and_the_viewer_is_framed_safely(world, session):
    episode = ready_episode_row(session)
    episode.rerun_file = "recordings/x.rrd"
    episode.save()
    client = _client(world.a.researcher)
    page = client.get(f"/episodes/{episode.pk}/")
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]
    from teleop.views import viewer_index

    if not viewer_index().exists():
        pytest.skip("the Rerun viewer is installed by `make` (scripts/install_rerun_viewer.py)")
    html = page.content.decode()
    assert "data-viewer" in html and "url=http%3A%2F%2Ftestserver%2Fepisodes%2F" in html
    viewer = client.get(f"/episodes/{episode.pk}/viewer?url=http://testserver/x.rrd")
    assert viewer.status_code == 200
    assert viewer["X-Frame-Options"] == "SAMEORIGIN"
    policy = viewer["Content-Security-Policy"]
    assert "connect-src 'self'" in policy and "'wasm-unsafe-eval'" in policy
    assert "frame-ancestors 'self'" in policy
    assert '<base href="/static/rerun-' in viewer.content.decode()


def test_episode_browser_filters_and_saves_a_view(world, session):
    labelled = ready_episode_row(session)
    ready_episode_row(session)
    Label.objects.create(episode=labelled, outcome="success", labeler_label="t")
    client = _client(world.a.researcher)
    page = client.get("/episodes/?outcome=success").content.decode()
    assert "1 episode" in page
    response = client.post(
        "/datasets/save", {"name": "successes", "outcome": "success", "team": world.a.team.pk}
    )
    assert response.status_code == 302
    view = DatasetView.objects.get(name="successes")
    assert view.versions.get().episode_ids == [str(labelled.pk)]
    assert view.team == world.a.team


def test_operators_cannot_save_dataset_views(world, session):
    client = _client(world.a.operator)
    assert "Researchers and admins of a team save" in client.get("/episodes/").content.decode()
    response = client.post("/datasets/save", {"name": "mine", "team": world.a.team.pk}, follow=True)
    assert "The view was not saved" in response.content.decode()
    assert not DatasetView.objects.exists()


def test_a_curator_in_two_teams_chooses_the_team_and_only_where_they_curate(world, session):
    from core.models import Membership
    from core.services import teams

    researcher = world.a.researcher
    teams.add_member(
        actor=None, team=world.b.team, user=researcher, role=Membership.Role.RESEARCHER
    )
    client = _client(researcher)
    page = client.get("/episodes/").content.decode()
    assert world.a.team.name in page and world.b.team.name in page
    client.post("/datasets/save", {"name": "for-b", "team": world.b.team.pk})
    assert DatasetView.objects.get(name="for-b").team == world.b.team
    response = client.post("/datasets/save", {"name": "nope"}, follow=True)
    assert "Team: This field is required." in response.content.decode()
    operator_only = _client(world.b.operator)
    operator_only.post("/datasets/save", {"name": "sneaky", "team": world.b.team.pk})
    assert not DatasetView.objects.filter(name__in=["nope", "sneaky"]).exists()


def test_recording_needs_a_signed_link_or_a_signed_in_member(client, world, session, tmp_path):
    from django.core import signing
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from teleop.views import RECORDING_SALT, recording_token

    episode = ready_episode_row(session)
    other = ready_episode_row(session)
    episode.rerun_file = default_storage.save("recordings/x.rrd", ContentFile(b"RRF2data"))
    episode.save()
    url = f"/episodes/{episode.pk}/recording.rrd"
    assert client.get(url).status_code == 404  # anonymous, no token
    token = recording_token(episode)
    assert b"".join(client.get(f"{url}?token={token}").streaming_content) == b"RRF2data"
    wrong = signing.dumps([str(other.pk), episode.rerun_file], salt=RECORDING_SALT)
    assert client.get(f"{url}?token={wrong}").status_code == 404
    # A link to a recording since rebuilt under another key (an erasure) is void.
    Episode.objects.filter(pk=episode.pk).update(rerun_file="recordings/y.rrd")
    assert client.get(f"{url}?token={token}").status_code == 404
    assert client.get(f"{url}?token=forged").status_code == 404
    assert _client(world.b.admin).get(url).status_code == 404


def test_live_table_polls_fast_while_busy_slowly_when_quiet_and_stops_once_settled(world, session):
    from datetime import timedelta

    from django.utils import timezone

    from teleop.models import Session
    from teleop.views import LIVE_FAST_S, LIVE_SLOW_S, episode_rows, poll_every

    episode = ready_episode_row(session)
    assert poll_every(session, episode_rows(session)) == LIVE_FAST_S  # just opened
    long_ago = timezone.now() - timedelta(hours=1)
    Session.objects.filter(pk=session.pk).update(opened_at=long_ago)
    Episode.objects.filter(pk=episode.pk).update(updated_at=long_ago)
    session.refresh_from_db()
    assert poll_every(session, episode_rows(session)) == LIVE_SLOW_S  # open but quiet
    Episode.objects.filter(pk=episode.pk).update(state=Episode.State.PROCESSING)
    assert poll_every(session, episode_rows(session)) == LIVE_FAST_S  # busy again
    Episode.objects.filter(pk=episode.pk).update(state=Episode.State.READY)
    Session.objects.filter(pk=session.pk).update(status=Session.Status.CLOSED)
    session.refresh_from_db()
    assert poll_every(session, episode_rows(session)) is None  # closed and settled
    page = _client(world.a.operator).get(f"/teleop/sessions/{session.pk}/").content.decode()
    assert 'hx-trigger="episodes-changed from:body"' in page and "final: session closed" in page


def test_discard_over_htmx_answers_the_panel_in_place_and_refuses_a_blank_reason(world, session):
    episode = ready_episode_row(session)
    client = _client(world.a.operator)
    url = f"/episodes/{episode.pk}/discard"
    refused = client.post(url, {"reason": "   "}, HTTP_HX_REQUEST="true")
    assert refused.status_code == 400
    assert "Say why the episode is discarded." in refused.content.decode()
    episode.refresh_from_db()
    assert not episode.is_discarded

    response = client.post(url, {"reason": "bumped the table"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # the panel, not a redirect to reload the page
    assert response["HX-Trigger"] == "episodes-changed"  # the live table shows it discarded
    panel = response.content.decode()
    assert f'data-panel-episode="{episode.pk}"' in panel
    assert "Episode discarded; it stays listed with its reason." in panel
    episode.refresh_from_db()
    assert episode.discard_reason == "bumped the table"


def test_a_discarded_episode_is_offered_labelling_but_not_discard(world, session):
    episode = ready_episode_row(session)
    labels.discard_episode(actor=world.a.operator, episode=episode, reason="bumped")
    client = _client(world.a.operator)
    discard = f"/episodes/{episode.pk}/discard"
    for page in (f"/episodes/{episode.pk}/label", f"/episodes/{episode.pk}/"):
        html = client.get(page).content.decode()
        assert discard not in html and ">Discard</button>" not in html
        assert 'value="bumped"' in html and "Save label" in html  # the service labels it
    rows = client.get(f"/teleop/sessions/{session.pk}/episodes").content.decode()
    assert "data-open-label" in rows

    again = client.post(discard, {"reason": "another"}, HTTP_HX_REQUEST="true")
    assert "discarded already: bumped" in again.content.decode()
    episode.refresh_from_db()
    assert episode.discard_reason == "bumped"


def _state_options(html: str) -> list[tuple[str, str]]:
    select = re.search(r'<select name="state".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)


def test_episode_browser_lists_ready_once_and_reaches_discarded_and_other_states(world, session):
    ready_episode_row(session)
    rejected = ready_episode_row(session)
    Episode.objects.filter(pk=rejected.pk).update(state=Episode.State.REJECTED)
    discarded = ready_episode_row(session)
    labels.discard_episode(actor=world.a.operator, episode=discarded, reason="bumped")
    client = _client(world.a.researcher)

    options = _state_options(client.get("/episodes/").content.decode())
    assert [label for _, label in options].count("Ready") == 1
    assert options[0] == ("ready", "Ready")  # the default, shown first
    assert {value for value, _ in options} == set(Episode.State.values)
    # Links made before (no state, an empty one, an explicit ready) still mean ready.
    for query in ("", "?state=", "?state=ready"):
        page = client.get(f"/episodes/{query}").content.decode()
        assert "1 episode, ready; discarded episodes are hidden" in page
    page = client.get("/episodes/?include_discarded=on").content.decode()
    assert "2 episodes, ready</p>" in page and f"/episodes/{discarded.pk}/" in page
    assert "1 episode, rejected" in client.get("/episodes/?state=rejected").content.decode()

    # Saved as a view, the default is the shared filters' default and discarded is explicit.
    for name, data in (("blank", {"state": ""}), ("ready", {"state": "ready"})):
        client.post("/datasets/save", {"name": name, "team": world.a.team.pk, **data})
    client.post(
        "/datasets/save", {"name": "all", "team": world.a.team.pk, "include_discarded": "on"}
    )
    filters = {v.name: v.versions.get().filters for v in DatasetView.objects.all()}
    assert filters == {"blank": {}, "ready": {}, "all": {"include_discarded": True}}
    assert len(DatasetView.objects.get(name="all").versions.get().episode_ids) == 2


def test_episode_browser_page_links_carry_only_the_filters_set(world, session, monkeypatch):
    from teleop import views

    monkeypatch.setattr(views, "PAGE_SIZE", 1)
    for _ in range(3):
        ready_episode_row(session)
    client = _client(world.a.researcher)
    assert 'href="?page=2"' in client.get("/episodes/").content.decode()
    page = client.get("/episodes/?task=&outcome=unlabelled&state=&page=2").content.decode()
    assert 'href="?outcome=unlabelled&amp;page=1"' in page
    assert 'href="?outcome=unlabelled&amp;page=3"' in page
    assert "?&" not in page and "page=2&amp;page" not in page


def test_an_export_chooses_its_images_and_the_page_says_what_they_cost(
    world, session, django_assert_num_queries
):
    from teleop import datasets
    from teleop.models import DatasetExport

    for seconds in (2.0, 3.0):
        episode = ready_episode_row(session)
        Episode.objects.filter(pk=episode.pk).update(duration_s=seconds)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="costly")
    cameras = world.a.robot.embodiment.spec["cameras"]
    rows = 5.0 * min(c["fps"] for c in cameras)
    expected = int(rows * sum(c["width"] * c["height"] * 3 for c in cameras) * 2)
    version = view.versions.get()
    with django_assert_num_queries(2):  # however many episodes: durations, then specs
        assert datasets.robomimic_image_bytes(version) == expected
    client = _client(world.a.researcher)
    page = client.get(f"/datasets/{view.pk}/").content.decode()
    assert "Image size (robomimic)" in page and "Image compression (robomimic)" in page
    from django.template.defaultfilters import filesizeformat

    # The estimate, before any export: uncompressed at the cameras' size is the bound above.
    assert "Estimated size of the images" in page and "An estimate" in page
    assert f'<td class="num">{filesizeformat(expected)}</td>' in page
    assert f"by {world.a.researcher.username}</li>" in page and "by user:" not in page

    client.post(f"/datasets/{view.pk}/", {"format": "robomimic", "images": "gzip"})
    client.post(f"/datasets/{view.pk}/", {"format": "lerobot", "images": "gzip"})
    made = dict(DatasetExport.objects.values_list("format", "images"))
    assert made == {"robomimic": "gzip", "lerobot": "raw"}  # LeRobot's frames are video
    refused = client.post(f"/datasets/{view.pk}/", {"format": "robomimic", "images": "png"})
    assert refused.status_code == 400
    assert "Select a valid choice" in refused.content.decode()
    assert DatasetExport.objects.count() == 2


# --- The console and its robot --------------------------------------------------------------


def test_console_shows_the_session_code_and_when_the_robot_was_last_seen(world, session):
    from datetime import timedelta

    from django.utils import timezone

    from core.models import Robot

    client = _client(world.a.operator)
    page = client.get(f"/teleop/sessions/{session.pk}/").content.decode()
    assert f"data-session-code>{session.code}<" in page
    assert f"--session {session.code}" in page
    assert "never seen" in page
    seen = timezone.now() - timedelta(seconds=12)
    Robot.objects.filter(pk=world.a.robot.pk).update(last_seen_at=seen)
    rows = client.get(f"/teleop/sessions/{session.pk}/episodes").content.decode()
    assert re.search(r"connected</span> last seen 1[2-4] s ago", rows), rows


def test_console_says_which_condition_to_set_up_next_and_how_many_remain(world):
    from core.services import conditions as condition_services
    from teleop.services import protocols, sessions

    dim = condition_services.create_condition(
        actor=world.a.admin,
        team=world.a.team,
        factor="lighting",
        level="dim",
        reset_instructions="Lamp off.",
    )
    protocol = protocols.create_protocol(
        actor=world.a.admin,
        team=world.a.team,
        name="dim data",
        task_version=world.a.task.versions.get(),
        targets=[(dim, 3)],
    )
    from core.services import operators

    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    session = sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=protocol.task_version,
        operator_code=operator.code,
        protocol=protocol,
    )
    page = _client(world.a.operator).get(f"/teleop/sessions/{session.pk}/").content.decode()
    assert re.search(r"Set up next: <strong>lighting: dim</strong>\s*<span[^>]*>\(3 more", page)
    assert "Lamp off." in page


# --- Labels that respect the checks ---------------------------------------------------------


def test_label_panel_shows_the_automatic_checks_verdicts(world, checked_session):
    from tests.teleop.recordings import checked_episode

    episode = checked_episode(checked_session, "failed")
    panel = _client(world.a.operator).get(f"/episodes/{episode.pk}/label").content.decode()
    assert "lifted: failed" in panel and "no-nan: passed" in panel
    assert "(decides success)" in panel


def test_a_success_label_against_a_failed_check_asks_to_confirm_then_saves_flagged(
    world, checked_session
):
    from tests.teleop.recordings import checked_episode

    episode = checked_episode(checked_session, "failed")
    client = _client(world.a.operator)
    url = f"/episodes/{episode.pk}/label"
    first = client.post(url, {"outcome": "success"}, HTTP_HX_REQUEST="true")
    page = first.content.decode()
    assert first.status_code == 400 and "Label saved" not in page
    assert "success check &#x27;lifted&#x27; failed" in page
    assert 'name="confirm_disagreement"' in page
    assert not Label.objects.exists()

    second = client.post(
        url, {"outcome": "success", "confirm_disagreement": "on"}, HTTP_HX_REQUEST="true"
    )
    assert second.status_code == 200 and "Label saved" in second.content.decode()
    assert Label.objects.get().check_disagrees


@pytest.mark.parametrize(
    "data, message",
    [
        ({"outcome": "success", "failure_codes": ["dropped"]}, "A success has no failure code"),
        (
            {"outcome": "partial", "stages_reached": ["reach", "lift"]},
            "Stage &#x27;lift&#x27; is marked reached but &#x27;grasp&#x27;",
        ),
    ],
)
def test_contradictory_labels_are_refused_beside_the_field(world, session, data, message):
    episode = ready_episode_row(session)
    response = _client(world.a.operator).post(
        f"/episodes/{episode.pk}/label", data, HTTP_HX_REQUEST="true"
    )
    page = response.content.decode()
    assert response.status_code == 400 and message in page
    assert re.search(r'<ul class="errorlist">\s*<li>', page)  # beside the field
    assert not Label.objects.exists()
