"""proving_ground.sim without a server: the spec, conditions, policies and the policy server."""

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from proving_ground.episode.spec import as_embodiment_spec  # noqa: E402
from proving_ground.sim.conditions import (  # noqa: E402
    UnknownCondition,
    derive_seed,
    pusht_initial_state,
)
from proving_ground.sim.env import make_pusht_env, rollout  # noqa: E402
from proving_ground.sim.expert import expert_policy  # noqa: E402
from proving_ground.sim.policies import load_policy, serve_policy  # noqa: E402
from proving_ground.sim.spec import derive_spec  # noqa: E402


@pytest.fixture(scope="module")
def env():
    env = make_pusht_env()
    yield env
    env.close()


def test_the_spec_comes_from_the_spaces_and_the_platform_accepts_it(env):
    spec = derive_spec(env, name="pusht")
    assert spec == {
        "joint_names": ["agent_x", "agent_y"],
        "observations": {"qpos": {"shape": [2], "dtype": "float64"}},
        "action": {"shape": [2], "dtype": "float32"},
        "cameras": [{"name": "top", "width": 96, "height": 96, "fps": 10.0}],
        "control_hz": 10.0,
        "name": "pusht",
    }
    assert as_embodiment_spec(spec).cameras[0].name == "top"


def test_a_condition_and_a_seed_give_the_same_initial_state_every_time(env):
    a = pusht_initial_state("block_start", "left", 7)
    assert a == pusht_initial_state("block_start", "left", 7)
    assert a != pusht_initial_state("block_start", "left", 8)
    assert derive_seed("trial", 3) == derive_seed("trial", 3) != derive_seed("trial", 4)
    x = a.options["reset_to_state"][2]
    assert 110 <= x <= 190
    right = pusht_initial_state("block_start", "right", 7).options["reset_to_state"][2]
    assert 322 <= right <= 402
    first = rollout(env, expert_policy(), a, max_steps=20)
    again = rollout(env, expert_policy(), a, max_steps=20)
    assert first.final_coverage == again.final_coverage
    assert a.as_record()["sim_seed"] == "7"
    with pytest.raises(UnknownCondition):
        pusht_initial_state("block_start", "upside-down", 1)


def test_a_policy_named_by_checkpoint_uri_and_one_behind_a_policy_server(env):
    initial = pusht_initial_state("block_start", "center", 3)
    local = load_policy({"checkpoint_uri": "pg-policy:proving_ground.sim.expert:expert_policy"})
    server = serve_policy(expert_policy())
    try:
        url = f"http://127.0.0.1:{server.server_port}/"
        remote = load_policy({"server_url": url, "checkpoint_uri": ""})
        here = rollout(env, local, initial, max_steps=15)
        there = rollout(env, remote, initial, max_steps=15)
    finally:
        server.shutdown()
    assert here.final_coverage == pytest.approx(there.final_coverage)
    random = load_policy({"checkpoint_uri": "proving_ground.sim.expert:random_policy?seed=3"})
    actions = random({}, 0)
    assert actions.shape == (1, 2) and np.all((actions >= 0) & (actions <= 512))
