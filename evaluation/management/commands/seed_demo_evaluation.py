"""`manage.py seed_demo_evaluation`: the demo data of `seed_demo`, plus an evaluation to look at.

Adds three public policies, a public benchmark ("Tabletop basics": two tasks x two lighting
levels) with one finished, blinded campaign whose trials were scored by the demo operator,
and a second campaign still running (one trial held by the demo robot) for the evaluation
console. The outcomes are simulated from a fixed seed — demo data, marked as such in every
description. Safe to run again: it adds nothing once the benchmark exists.
"""

import hashlib
import random

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from core.models import Condition, Operator, Robot, Task, Team, Visibility
from evaluation.models import Benchmark, Campaign, LeaderboardSnapshot
from evaluation.services import benchmarks, campaigns, leaderboards, policies, trials

BENCHMARK = "Tabletop basics"
SIMULATED = "Demo data: outcomes simulated by seed_demo_evaluation."
# Chance of success per policy, lowered under dim light: a board with a clear leader, a close
# pair and a visible lighting effect.
POLICIES = {"act-baseline": 0.55, "diffusion-policy": 0.75, "pi0-finetune": 0.7}
DIM_PENALTY = 0.2


class Command(BaseCommand):
    help = "Create demo data including policies, a public benchmark and campaigns (idempotent)."

    def handle(self, *args, **options):
        call_command("seed_demo", stdout=self.stdout)
        if Benchmark.objects.filter(name=BENCHMARK).exists():
            self.stdout.write("Evaluation demo data already there.")
            return
        with transaction.atomic():
            benchmark = self._seed()
        # The worker would do this after commit; doing it now means the board shows at once.
        leaderboards.refresh_leaderboard(
            scope=LeaderboardSnapshot.Scope.BENCHMARK, object_id=benchmark.pk
        )
        for campaign in Campaign.objects.filter(benchmark=benchmark).exclude(status="draft"):
            leaderboards.refresh_leaderboard(
                scope=LeaderboardSnapshot.Scope.CAMPAIGN, object_id=campaign.pk
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Evaluation demo data ready: leaderboard '{BENCHMARK}' "
                "(http://127.0.0.1:8000/leaderboards/), campaigns at /campaigns/."
            )
        )

    def _seed(self) -> Benchmark:
        User = get_user_model()
        team = Team.objects.get(slug="demo-lab")
        rita = User.objects.get(username="rita")  # researcher: designs
        olga = User.objects.get(username="olga")  # operator: scores
        robot = Robot.objects.get(team=team, name="demo-arm-1")
        operator = Operator.objects.get(code="OP-DEMO1")
        tasks = {
            t.slug: t.versions.order_by("-number").first() for t in Task.objects.filter(team=team)
        }
        lighting = list(Condition.objects.filter(team=team, factor="lighting").order_by("level"))
        versions = []
        for name in POLICIES:
            policy = policies.create_policy(
                actor=rita,
                team=team,
                name=name,
                description=SIMULATED,
                visibility=Visibility.PUBLIC,
            )
            versions.append(
                policies.create_policy_version(
                    actor=rita,
                    policy=policy,
                    label="v1",
                    checkpoint_sha256=hashlib.sha256(name.encode()).hexdigest(),
                    notes=SIMULATED,
                )
            )
        benchmark = benchmarks.create_benchmark(
            actor=rita,
            team=team,
            name=BENCHMARK,
            description="Pick and stack under bright and dim light. " + SIMULATED,
            task_versions=[tasks["pick-cube"], tasks["stack-blocks"]],
            conditions=lighting,
            trials_per_cell=8,
            visibility=Visibility.PUBLIC,
        )
        benchmark = benchmarks.publish_benchmark(actor=rita, benchmark=benchmark)
        finished = campaigns.create_campaign(
            actor=rita,
            team=team,
            name="Tabletop basics, round 1",
            description=SIMULATED,
            benchmark=benchmark,
            policy_versions=versions,
            robots=[robot],
            operators=[operator],
            blinded=True,
            seed=20261123,
            visibility=Visibility.PUBLIC,
        )
        finished = campaigns.start_campaign(actor=rita, campaign=finished)
        rng = random.Random(7)
        self._play(finished, robot, olga, rng)

        running = campaigns.create_campaign(
            actor=rita,
            team=team,
            name="Drawer check",
            description="Still running: open the evaluation console to score it. " + SIMULATED,
            task_versions=[tasks["open-drawer"]],
            conditions=lighting,
            trials_per_cell=4,
            policy_versions=versions[1:],
            robots=[robot],
            operators=[operator],
            blinded=True,
            seed=20261124,
        )
        running = campaigns.start_campaign(actor=rita, campaign=running)
        self._play(running, robot, olga, rng, limit=5)
        trials.next_trial_for_robot(actor=olga, campaign=running, robot=robot)  # one held
        return benchmark

    def _play(self, campaign, robot, operator_user, rng, limit=None) -> None:
        """The operator runs and scores trials as the evaluation console would."""
        played = 0
        while limit is None or played < limit:
            trial = trials.next_trial_for_robot(actor=operator_user, campaign=campaign, robot=robot)
            if trial is None:
                return
            trials.report_trial_result(actor=operator_user, trial=trial, **_simulate(trial, rng))
            played += 1


def _simulate(trial, rng) -> dict:
    criteria = trial.task_version.criteria
    stages = [s["id"] for s in criteria.get("stages", [])]
    codes = [c["code"] for c in criteria.get("failure_codes", [])]
    if rng.random() < 0.03:
        return {"valid": False, "invalid_reason": "operator_error", "notes": "Reset was wrong."}
    chance = POLICIES[trial.policy_version.policy.name]
    if trial.condition.level == "dim":
        chance -= DIM_PENALTY
    if rng.random() < chance:
        return {"outcome": "success", "stages_reached": stages}
    reached = stages[: rng.randrange(len(stages))] if stages else []
    return {
        "outcome": "failure",
        "stages_reached": reached,
        "failure_codes": [rng.choice(codes)] if codes else [],
    }
