"""Campaigns run by robots over real HTTP against a live server: the whole flow with its
leaderboard checked against numbers computed here, robots racing for trials, and the
walk-through of docs/evaluation.md."""

import re
import threading
from collections import Counter, defaultdict
from io import StringIO
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.test import Client

from core.services import robots
from evaluation.models import Campaign, Trial, TrialReport
from proving_ground.stats.aggregates import macro_average
from proving_ground.stats.intervals import wilson_interval
from proving_ground.stats.multiple_comparisons import pairwise_comparisons
from tests.core import factories
from tests.evaluation.factories import make_campaign, make_conditions, make_policy_version

ROOT = Path(__file__).resolve().parents[2]


def _robot(key: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Api-Key {key}"
    return session


def _signed_in(user) -> tuple[str, str]:
    """A person's session cookie and a CSRF token, as a browser would hold them."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value, "x" * 32


def run_worker():
    """The real job worker: runs every queued leaderboard refresh."""
    call_command("db_worker", "--batch", stdout=StringIO(), stderr=StringIO())


def test_a_campaign_through_the_robot_api_scores_as_computed_by_hand(transactional_db, live_server):
    world = factories.build_world()
    versions = [make_policy_version(world.a, name=n) for n in ("act", "diffusion", "bc")]
    conditions = make_conditions(world.a, levels=("bright", "dim"))
    campaign = make_campaign(
        world.a,
        policy_versions=versions,
        task_versions=[world.a.task.versions.get()],
        conditions=conditions,
        trials_per_cell=3,
        seed=2024,
        # Computed by hand below as pg-score/1 defines it (pooled comparisons); pg-score/2's
        # figures are checked in tests/evaluation/test_leaderboard.py.
        scoring_version="pg-score/1",
    )
    base = f"{live_server.url}/api/v1"
    robot = _robot(world.a.robot_key)
    sent = {}
    while True:
        answer = robot.post(f"{base}/campaigns/{campaign.pk}/next-trial", timeout=30)
        assert answer.status_code == 200, answer.text
        trial = answer.json()["trial"]
        if trial is None:
            break
        if trial["order"] == 0:  # a lost answer costs nothing: asking again, same trial
            again = robot.post(f"{base}/campaigns/{campaign.pk}/next-trial", timeout=30)
            assert again.json()["trial"]["id"] == trial["id"]
        # The robot only knows the alias; outcomes follow a rule of what it sees.
        if trial["order"] == 5:
            body = {"valid": False, "invalid_reason": "success_at_reset"}
        else:
            level = trial["condition"]["level"]
            succeeded = (trial["order"] * 7 + len(trial["alias"]) + len(level)) % 3 != 0
            body = {"outcome": "success" if succeeded else "failure"}
        headers = {"Idempotency-Key": f"result-{trial['id']}"}
        report = robot.post(trial["report_url"], json=body, headers=headers, timeout=30)
        assert report.status_code == 200, report.text
        if trial["order"] == 0:  # a retried report is replayed, not stored twice
            retried = robot.post(trial["report_url"], json=body, headers=headers, timeout=30)
            assert retried.headers.get("Idempotent-Replayed") == "true"
        sent[trial["id"]] = body
    assert len(sent) == 3 * 2 * 3 and TrialReport.objects.count() == len(sent)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DONE

    # By hand: k/n per (policy version, condition) from what the robot sent.
    counts = defaultdict(lambda: [0, 0, 0])  # successes, counted trials, invalid
    for trial in Trial.objects.filter(pk__in=sent):
        body = sent[str(trial.pk)]
        cell = counts[(str(trial.policy_version_id), str(trial.condition_id))]
        if body.get("valid") is False:
            cell[2] += 1
        else:
            cell[0] += body["outcome"] == "success"
            cell[1] += 1

    run_worker()
    board = robot.get(f"{base}/campaigns/{campaign.pk}/leaderboard", timeout=30).json()
    assert board["trials"] == len(sent) - 1 and board["invalid"] == 1
    assert board["invalid_reasons"] == {"success_at_reset": 1}
    rows = {row["policy_version"]: row for row in board["rows"]}
    assert set(rows) == {str(v.pk) for v in versions}
    for version_id, row in rows.items():
        k_total = n_total = 0
        for cell in row["cells"]:
            k, n, invalid = counts[(version_id, cell["condition"])]
            assert (cell["successes"], cell["trials"], cell["invalid"]) == (k, n, invalid)
            assert (cell["low"], cell["high"]) == pytest.approx(wilson_interval(k, n))
            k_total, n_total = k_total + k, n_total + n
        assert (row["successes"], row["trials"]) == (k_total, n_total)
        assert (row["low"], row["high"]) == pytest.approx(wilson_interval(k_total, n_total))
        # One task: the macro average is the task's pooled rate.
        assert row["macro"] == pytest.approx(k_total / n_total)
        macro = macro_average([(k_total, n_total)])
        assert (row["macro_low"], row["macro_high"]) == pytest.approx((macro.low, macro.high))
    ranked = sorted(rows.values(), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranked] == sorted(r["rank"] for r in ranked)
    assert len(board["pairwise"]) == 3
    totals = {v: (r["successes"], r["trials"]) for v, r in rows.items()}
    expected = pairwise_comparisons(totals)
    assert {v: r["letters"] for v, r in rows.items()} == expected.letters


@pytest.mark.postgres_only
def test_two_robots_asking_at_once_never_get_the_same_trial(transactional_db, live_server):
    world = factories.build_world()
    _, other_key = robots.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    campaign = make_campaign(
        world.a,
        policy_versions=[make_policy_version(world.a), make_policy_version(world.a)],
        robots=[world.a.robot, world.a.other_robot],
        robot_assignment="shared",
        conditions=make_conditions(world.a, levels=("a", "b", "c")),
        task_versions=[world.a.task.versions.get()],
        trials_per_cell=4,
    )
    base = f"{live_server.url}/api/v1"
    start = threading.Barrier(4)
    taken = defaultdict(list)  # robot key -> trial ids, in the order received
    errors = []

    def work(key):
        session = _robot(key)
        try:
            start.wait(timeout=30)
            while True:
                answer = session.post(f"{base}/campaigns/{campaign.pk}/next-trial", timeout=60)
                if answer.status_code != 200:
                    errors.append(answer.text)
                    return
                trial = answer.json()["trial"]
                if trial is None:
                    return
                taken[key].append(trial["id"])
                report = session.post(
                    trial["report_url"],
                    json={"outcome": "success"},
                    headers={"Idempotency-Key": f"r-{trial['id']}"},
                    timeout=60,
                )
                # Two scripts of one robot may both report its trial: one wins, the other is
                # told it is reported already.
                if report.status_code not in (200, 409):
                    errors.append(report.text)
                    return
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    # Two scripts per robot: the robots race each other, and each robot races itself.
    threads = [
        threading.Thread(target=work, args=(key,))
        for key in (world.a.robot_key, world.a.robot_key, other_key, other_key)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    first = set(taken[world.a.robot_key])
    second = set(taken[other_key])
    assert not first & second, "a trial went to two robots"
    assert len(first | second) == Trial.objects.filter(campaign=campaign).count() == 2 * 3 * 4
    assert not Trial.objects.filter(campaign=campaign).exclude(state="done").exists()
    placed = set(Trial.objects.filter(campaign=campaign).values_list("block", "robot_id"))
    robots_per_block = Counter(block for block, _ in placed)
    assert set(robots_per_block.values()) == {1}, "a block was split between robots"
    assert TrialReport.objects.filter(trial__campaign=campaign).count() == 2 * 3 * 4


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_the_walk_through_in_the_docs_runs_against_a_live_server(
    transactional_db, live_server, capsys
):
    world = factories.build_world()
    conditions = make_conditions(world.a)
    session_id, csrf = _signed_in(world.a.researcher)
    (example,) = _python_blocks(ROOT / "docs" / "evaluation.md")
    example = example.replace("http://127.0.0.1:8000", live_server.url)
    names = {
        "SESSION_ID": session_id,
        "CSRF_TOKEN": csrf,
        "TEAM": world.a.team.slug,
        "TASK_VERSION": str(world.a.task.versions.get().pk),
        "CONDITIONS": [str(c.pk) for c in conditions],
        "ROBOT_ID": str(world.a.robot.pk),
        "ROBOT_KEY": world.a.robot_key,
    }
    exec(compile(example, "docs/evaluation.md", "exec"), names)  # our own doc, not input
    printed = capsys.readouterr().out
    assert "act-pick 4/4 macro 1.00" in printed and "diffusion-pick 4/4" in printed
    assert "A - B 0.0" in printed
    campaign = Campaign.objects.get()
    assert campaign.status == "done" and campaign.benchmark.is_published
