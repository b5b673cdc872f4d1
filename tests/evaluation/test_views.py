"""Leaderboard pages: public ones need no sign-in, private ones stay with their team."""

import pytest
from django.test import Client

from core.models import Visibility
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
)

pytestmark = pytest.mark.django_db


def _board(world, visibility):
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        visibility=visibility,
    )
    good = make_policy_version(world.a, name="good-policy", visibility=Visibility.PUBLIC)
    weak = make_policy_version(world.a, name="weak-policy", visibility=Visibility.PUBLIC)
    campaign = make_campaign(
        world.a, policy_versions=[good, weak], benchmark=benchmark, visibility=Visibility.PUBLIC
    )
    play_campaign(
        campaign,
        world.a.robot,
        lambda t: {"outcome": "success" if t.policy_version_id == good.pk else "failure"},
    )
    return benchmark, good, weak


def test_public_leaderboard_needs_no_sign_in_and_shows_intervals_and_n(world):
    benchmark, good, weak = _board(world, Visibility.PUBLIC)
    client = Client()
    assert benchmark.name in client.get("/leaderboards/").content.decode()
    page = client.get(f"/leaderboards/{benchmark.pk}/").content.decode()
    assert "good-policy" in page and "weak-policy" in page
    assert 'class="interval"' in page and "95% interval" in page
    assert page.index("good-policy") < page.index("weak-policy")  # ranked
    assert "OP-" not in page  # no operators on a leaderboard


def test_private_leaderboard_is_404_outside_its_team(world):
    benchmark, _, _ = _board(world, Visibility.PRIVATE)
    assert Client().get(f"/leaderboards/{benchmark.pk}/").status_code == 404
    other = Client()
    other.force_login(world.b.admin)
    assert other.get(f"/leaderboards/{benchmark.pk}/").status_code == 404
    mine = Client()
    mine.force_login(world.a.researcher)
    assert mine.get(f"/leaderboards/{benchmark.pk}/").status_code == 200


def test_compare_page_shows_the_difference_and_refuses_a_bad_pair(world):
    benchmark, good, weak = _board(world, Visibility.PUBLIC)
    client = Client()
    page = client.get(f"/leaderboards/{benchmark.pk}/compare?a={good.pk}&b={weak.pk}")
    assert page.status_code == 200 and "On the leaderboard (macro success" in page.content.decode()
    unknown = client.get(f"/leaderboards/{benchmark.pk}/compare?a={good.pk}&b=nonsense")
    assert unknown.status_code == 400 and "Choose two policies" in unknown.content.decode()


def test_compare_page_first_shows_the_top_two_different_policies_compared(world):
    benchmark, good, weak = _board(world, Visibility.PUBLIC)
    page = Client().get(f"/leaderboards/{benchmark.pk}/compare")
    html = page.content.decode()
    assert page.status_code == 200 and "Pooled counts (for reference)" in html
    # The best row is A, the second B: each select has its own option selected.
    a_select = html[html.index('id="a"') : html.index("</select>", html.index('id="a"'))]
    b_select = html[html.index('id="b"') : html.index("</select>", html.index('id="b"'))]
    assert f'value="{good.pk}" selected' in a_select
    assert f'value="{weak.pk}" selected' in b_select


def test_compare_page_answers_the_same_policy_twice_with_a_message_not_an_error(world):
    benchmark, good, _ = _board(world, Visibility.PUBLIC)
    page = Client().get(f"/leaderboards/{benchmark.pk}/compare?a={good.pk}&b={good.pk}")
    html = page.content.decode()
    assert page.status_code == 200
    assert "not compared with itself" in html and "Choose two different policies" in html
    assert "Unpaired" not in html
