"""A PushT robot against a live server, through the robot client only: demonstrations under a
collection protocol, and a blinded two-policy campaign whose leaderboard fills."""

from collections import Counter

import pytest
import requests
from django.core.management import call_command

pytest.importorskip("gym_pusht")

from core.services import conditions as condition_services  # noqa: E402
from core.services import embodiments, operators, robots, task_versions  # noqa: E402
from evaluation.services import campaigns, policies  # noqa: E402
from proving_ground.client.api import ProvingGroundClient  # noqa: E402
from proving_ground.client.outbox import Outbox  # noqa: E402
from proving_ground.sim.env import make_pusht_env  # noqa: E402
from proving_ground.sim.runner import (  # noqa: E402
    PUSHT_CRITERIA,
    record_demonstrations,
    run_campaign,
)
from proving_ground.sim.spec import derive_spec  # noqa: E402
from teleop.models import Episode  # noqa: E402
from teleop.services import protocols  # noqa: E402
from tests.core import factories  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
OPERATOR = "OP-EXPERT"


@pytest.fixture
def pusht(transactional_db):
    world = factories.build_world().a
    env = make_pusht_env()
    embodiment = embodiments.create_embodiment(
        actor=world.admin, team=world.team, name="pusht", spec=derive_spec(env)
    )
    robot = robots.create_robot(
        actor=world.admin, team=world.team, embodiment=embodiment, name="pusht-sim-1"
    )
    _, key = robots.issue_api_key(actor=world.admin, robot=robot)
    task = task_versions.create_task(
        actor=world.admin,
        team=world.team,
        slug="push-t",
        name="Push the T",
        instruction="Push the T onto its goal.",
        time_limit_s=30.0,
        criteria=PUSHT_CRITERIA,
        allowed_embodiments=[embodiment],
    )
    conditions = [
        condition_services.create_condition(
            actor=world.admin, team=world.team, factor="block_start", level=level
        )
        for level in ("left", "right")
    ]
    operators.create_operator(actor=world.admin, team=world.team, code=OPERATOR)
    world.extras.update(
        env=env, robot=robot, key=key, version=task.versions.get(), conditions=conditions
    )
    yield world
    env.close()


def run_worker():
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)


def test_pusht_records_demonstrations_and_runs_a_blinded_campaign(pusht, live_server, tmp_path):
    x = pusht.extras
    client = ProvingGroundClient(live_server.url, x["key"], backoff_base_s=0.05)
    protocol = protocols.create_protocol(
        actor=pusht.admin,
        team=pusht.team,
        name="push-t demos",
        task_version=x["version"],
        targets=[(c, 2) for c in x["conditions"]],
    )
    demos = record_demonstrations(
        client,
        outbox=Outbox(tmp_path / "demos"),
        count=3,
        task_version=str(x["version"].pk),
        protocol=str(protocol.pk),
        operator=OPERATOR,
        max_steps=40,
        env=x["env"],
        log=lambda line: None,
    )
    run_worker()
    episodes = Episode.objects.filter(pk__in=[d.episode_id for d in demos])
    assert sorted(e.state for e in episodes) == ["ready"] * 3
    # Each take set up the condition the platform asked for (its balanced draw counts
    # accepted, i.e. labelled, episodes: labelling is the operator's) and recorded its seed.
    by_id = {str(e.pk): e for e in episodes}
    for demo in demos:
        assert by_id[demo.episode_id].condition.level == demo.rollout.initial_state.level
    assert Counter(e.condition.level for e in episodes).keys() <= {"left", "right"}

    uri = "pg-policy:proving_ground.sim.expert:"
    versions = []
    for name, load in (("expert", "expert_policy?noise=0.02"), ("random", "random_policy")):
        policy = policies.create_policy(
            actor=pusht.researcher, team=pusht.team, name=name, visibility="public"
        )
        versions.append(
            policies.create_policy_version(
                actor=pusht.researcher,
                policy=policy,
                label="v1",
                checkpoint_uri=uri + load,
                checkpoint_sha256=f"{len(versions) + 1:064x}",
            )
        )
    campaign = campaigns.create_campaign(
        actor=pusht.researcher,
        team=pusht.team,
        name="push-t round 1",
        policy_versions=versions,
        robots=[x["robot"]],
        task_versions=[x["version"]],
        conditions=x["conditions"],
        trials_per_cell=1,
        seed=15,
        visibility="public",
    )
    campaign = campaigns.start_campaign(actor=pusht.researcher, campaign=campaign)
    reports = run_campaign(
        client,
        str(campaign.pk),
        outbox=Outbox(tmp_path / "trials"),
        operator=OPERATOR,
        max_steps=40,
        env=x["env"],
        log=lambda line: None,
    )
    assert len(reports) == 4
    assert client.next_trial(str(campaign.pk)) is None
    run_worker()
    board = requests.get(
        f"{live_server.url}/api/v1/campaigns/{campaign.pk}/leaderboard",
        headers={"Authorization": f"Api-Key {x['key']}"},
        timeout=30,
    ).json()
    assert board["trials"] == 4
    assert len(board["rows"]) == 2  # blinded: the robot sees aliases
    assert all(row["trials"] == 2 for row in board["rows"])
