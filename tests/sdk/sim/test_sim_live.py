"""A PushT robot against a live server, through the robot client only: demonstrations under a
collection protocol, and a blinded two-policy campaign whose leaderboard fills."""

import json
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests
from django.core.management import call_command

pytest.importorskip("gym_pusht")

from core.services import conditions as condition_services  # noqa: E402
from core.services import embodiments, operators, robots, task_versions  # noqa: E402
from evaluation.models import Trial, TrialReport  # noqa: E402
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


def start_campaign(world, loads: list[dict]):
    """A started, blinded campaign of one policy version per ``load`` (checkpoint_uri /
    server_url) on the robot, one trial per cell."""
    versions = []
    for i, load in enumerate(loads, start=1):
        policy = policies.create_policy(
            actor=world.researcher, team=world.team, name=f"policy {i}", visibility="public"
        )
        versions.append(
            policies.create_policy_version(
                actor=world.researcher,
                policy=policy,
                label="v1",
                checkpoint_sha256=f"{i:064x}",
                **load,
            )
        )
    campaign = campaigns.create_campaign(
        actor=world.researcher,
        team=world.team,
        name="push-t round 1",
        policy_versions=versions,
        robots=[world.extras["robot"]],
        task_versions=[world.extras["version"]],
        conditions=world.extras["conditions"],
        trials_per_cell=1,
        seed=15,
        visibility="public",
    )
    return campaigns.start_campaign(actor=world.researcher, campaign=campaign)


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
    campaign = start_campaign(
        pusht,
        [
            {"checkpoint_uri": uri + "expert_policy?noise=0.02"},
            {"checkpoint_uri": uri + "random_policy"},
        ],
    )
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


class DroppingProxy:
    """A TCP proxy to ``upstream`` that, once, forwards a request whose first bytes contain
    ``drop_after`` and then closes both sockets instead of passing the answer back: the
    server has acted on the request, the client never hears so."""

    def __init__(self, upstream: str, drop_after: bytes):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.drop_after = drop_after
        self.dropped = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            armed = threading.Event()
            threading.Thread(target=self._pump, args=(client, server, armed, True)).start()
            threading.Thread(target=self._pump, args=(server, client, armed, False)).start()

    def _pump(self, source, sink, armed, upward: bool) -> None:
        try:
            while data := source.recv(65536):
                if not upward and armed.is_set():
                    self.dropped.set()
                    break  # the answer is dropped on the floor
                if upward and self.drop_after in data and not self.dropped.is_set():
                    armed.set()
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        self.listener.close()


class ChunkPolicyServer(BaseHTTPRequestHandler):
    """pg-policy-server/1 (docs/simulation.md) in a few lines: each answer is a chunk of 4
    targets, the agent's position nudged to the right."""

    requests_seen: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests_seen.append(body)
        x, y = body["observation"]["agent_pos"]
        data = json.dumps({"actions": [[x + 10.0 * k, y] for k in range(1, 5)]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


def test_campaign_with_a_policy_server_survives_a_dropped_report(pusht, live_server, tmp_path):
    x = pusht.extras
    policy_server = ThreadingHTTPServer(("127.0.0.1", 0), ChunkPolicyServer)
    threading.Thread(target=policy_server.serve_forever, daemon=True).start()
    proxy = DroppingProxy(live_server.url, drop_after=b"/result ")
    try:
        campaign = start_campaign(
            pusht,
            [
                {"checkpoint_uri": "pg-policy:proving_ground.sim.expert:expert_policy?noise=0.1"},
                {"server_url": f"http://127.0.0.1:{policy_server.server_port}/"},
            ],
        )
        client = ProvingGroundClient(proxy.url, x["key"], backoff_base_s=0.05)
        reports = run_campaign(
            client,
            str(campaign.pk),
            outbox=Outbox(tmp_path / "trials"),
            operator=OPERATOR,
            max_steps=20,
            env=x["env"],
            log=lambda line: None,
        )
    finally:
        proxy.close()
        policy_server.shutdown()

    assert proxy.dropped.is_set()  # the first report's answer never reached the runner
    assert len(reports) == 4
    trials = Trial.objects.filter(campaign=campaign)
    assert sorted(t.state for t in trials) == ["done"] * 4
    per_trial = Counter(
        TrialReport.objects.filter(trial__campaign=campaign).values_list("trial", flat=True)
    )
    assert sorted(per_trial.values()) == [1, 1, 1, 1]  # one result each, none twice
    # The policy server was asked, with the protocol's observation, from step 0 of each
    # of its two rollouts.
    seen = ChunkPolicyServer.requests_seen
    assert sum(1 for body in seen if body["step"] == 0) == 2
    assert {"agent_pos", "pixels_jpeg"} <= set(seen[0]["observation"])
