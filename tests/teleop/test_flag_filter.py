"""The quality-flag filter takes a kind (the part before ':') as well as a whole flag, in the
episode browser and in a dataset view's filters through the API."""

import pytest
from django.test import Client

from teleop.models import Episode
from teleop.selectors import filter_episodes, flag_choices
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged(session):
    """Episodes flagged: two failed checks of one kind, a low rate, one clean."""
    flags = {
        "grasp": ["check_failed:grasp-by-2s"],
        "lift": ["check_failed:lift", "low_rate"],
        "slow": ["low_rate"],
        "lookalike": ["check_failed_twice"],  # another kind that starts the same way
        "clean": [],
    }
    made = {}
    for name, episode_flags in flags.items():
        episode = ready_episode_row(session)
        Episode.objects.filter(pk=episode.pk).update(quality_flags=episode_flags)
        made[name] = str(episode.pk)
    return made


def _matching(flags_any) -> set[str]:
    rows = filter_episodes(Episode.objects.all(), {"flags_any": flags_any})
    return {str(pk) for pk in rows.values_list("pk", flat=True)}


def test_a_kind_matches_every_flag_of_that_kind_and_a_whole_flag_only_itself(flagged):
    assert _matching(["check_failed"]) == {flagged["grasp"], flagged["lift"]}
    assert _matching(["check_failed:grasp-by-2s"]) == {flagged["grasp"]}
    assert _matching(["low_rate"]) == {flagged["lift"], flagged["slow"]}
    assert _matching(["check_failed_twice"]) == {flagged["lookalike"]}
    assert _matching(["check_failed:grasp-by-2s", "low_rate"]) == {
        flagged["grasp"],
        flagged["lift"],
        flagged["slow"],
    }


def test_the_choices_are_the_kinds_present_with_their_whole_flags(flagged):
    assert flag_choices(Episode.objects.all()) == [
        ("check_failed", ["check_failed:grasp-by-2s", "check_failed:lift"]),
        ("check_failed_twice", []),
        ("low_rate", []),
    ]


def test_the_episode_browser_offers_kinds_and_filters_by_one(world, flagged):
    client = Client()
    client.force_login(world.a.researcher)
    page = client.get("/episodes/").content.decode()
    assert '<option value="check_failed">check_failed (any)</option>' in page
    assert '<option value="check_failed:lift">' in page
    by_kind = client.get("/episodes/?flag=check_failed").content.decode()
    assert "2 episodes" in by_kind
    assert flagged["grasp"] in by_kind and flagged["lift"] in by_kind
    assert flagged["slow"] not in by_kind
    whole = client.get("/episodes/?flag=check_failed:grasp-by-2s").content.decode()
    assert "1 episode" in whole and flagged["grasp"] in whole


def test_a_view_made_through_the_api_filters_by_kind(world, flagged, api):
    response = api(world.a.researcher).post(
        "/api/v1/dataset-views/",
        {
            "team": world.a.team.slug,
            "name": "failed checks",
            "filters": {"flags_any": ["check_failed"]},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    version = api(world.a.researcher).get(f"/api/v1/dataset-views/{response.json()['id']}/versions")
    assert set(version.json()[0]["episode_ids"]) == {flagged["grasp"], flagged["lift"]}
    bad = api(world.a.researcher).post(
        "/api/v1/dataset-views/",
        {"team": world.a.team.slug, "name": "bad", "filters": {"flags_any": ["a:b:c d"]}},
        format="json",
    )
    assert bad.status_code == 400
