"""Reads of the evaluation app, returning plain data.

Leaderboards aggregate in the database: one grouped query (policy version x task version x
condition, with conditional counts) whatever the number of trials, then `proving_ground.scoring`
runs the statistics on that small result. No Python loop ever walks the trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum, prefetch_related_objects

from core import access, rights
from core.models import Condition, Task, TaskVersion, Visibility
from evaluation.models import (
    Benchmark,
    Campaign,
    Outcome,
    OutcomeSource,
    Policy,
    PolicyVersion,
    Trial,
)
from proving_ground import scheduling, scoring
from proving_ground.stats.agreement import cohens_kappa_from_counts
from proving_ground.stats.comparisons import compare_two_policies, mcnemar_exact
from proving_ground.stats.sequential import sequential_paired_test

# `benchmark_leaderboard(reader=EVERYONE)`: the stored board, every pooled campaign counted.
EVERYONE = object()
_DONE = Q(state=Trial.State.DONE)
_INVALID = Q(state=Trial.State.INVALID)
_OPEN = Q(state__in=[Trial.State.SCHEDULED, Trial.State.ASSIGNED])


# --- Who sees what --------------------------------------------------------------------------


def is_blinded_for(actor, campaign: Campaign) -> bool:
    """Whether `actor` must see aliases instead of policies in this campaign.

    A blinded campaign hides its policies until it is done from robots, from its operators
    (even one who also holds another role) and from everyone without an admin or researcher
    role in the campaign's team. Any campaign, blinded or not, done or not, shows aliases to
    a reader who may see it but not every policy it runs (a public campaign of a team's
    private policy): its names are the team's to show."""
    if campaign.blinded and campaign.status != Campaign.Status.DONE:
        if _blinded_by_role(actor, campaign):
            return True
    return not _sees_every_policy(actor, campaign)


def prime_blinding(actor, campaigns) -> None:
    """Prepare `is_blinded_for(actor, c)` for a list of campaigns: two queries whatever
    their number (the campaigns' operators, and which campaigns run a policy the actor may
    not see), then one per team for the actor's roles (cached). For lists; optional."""
    campaigns = list(campaigns)
    if actor is None or not campaigns:
        return
    prefetch_related_objects(campaigns, "operators")  # skipped where already prefetched
    ids = {c.pk for c in campaigns}
    with_hidden = set(
        PolicyVersion.objects.filter(campaigns__in=ids)
        .exclude(policy__in=access.visible(Policy.objects.all(), actor).values("pk"))
        .values_list("campaigns", flat=True)
    )
    sees = actor.__dict__.setdefault("_pg_sees_policies", {})
    for pk in ids:
        sees.setdefault(pk, pk not in with_hidden)


def _sees_every_policy(actor, campaign: Campaign) -> bool:
    cache = actor.__dict__.setdefault("_pg_sees_policies", {}) if actor is not None else {}
    if campaign.pk not in cache:
        policies = Policy.objects.filter(versions__campaigns=campaign).distinct()
        cache[campaign.pk] = not policies.exclude(
            pk__in=access.visible(Policy.objects.all(), actor).values("pk")
        ).exists()
    return cache[campaign.pk]


def _blinded_by_role(actor, campaign: Campaign) -> bool:
    if actor is None or not actor.is_authenticated or access.is_robot(actor):
        return True
    cache = actor.__dict__.setdefault("_pg_blinded", {})
    if campaign.pk not in cache:
        # .all() so a prefetched list of operators is used when the caller loaded one.
        if any(op.user_id == actor.pk for op in campaign.operators.all()):
            cache[campaign.pk] = True
        else:
            cache[campaign.pk] = not rights.may(actor, rights.Right.UNBLIND, campaign.team_id)
    return cache[campaign.pk]


def leaderboard_campaigns(benchmark: Benchmark) -> QuerySet:
    """The campaigns a benchmark's leaderboard pools: done ones (a running campaign's
    partial numbers invite stopping when they look good), at least as visible as the
    benchmark so a private campaign never surfaces on a public board: public campaigns of
    any team, plus, unless the benchmark is public, the benchmark team's own."""
    campaigns = Campaign.objects.filter(benchmark=benchmark, status=Campaign.Status.DONE)
    if benchmark.visibility == Visibility.PUBLIC:
        return campaigns.filter(visibility=Visibility.PUBLIC)
    return campaigns.filter(Q(visibility=Visibility.PUBLIC) | Q(team_id=benchmark.team_id))


# --- The grouped query ----------------------------------------------------------------------


# The labels of an operator-vs-check agreement table (`check_agreement`).
_CHECK_PAIRS = [(a, b) for a in Outcome.values for b in Outcome.values]
# A done trial with a reported outcome and an automatic check's verdict; an outcome the check
# itself decided agrees by construction and is left out.
_CHECKED = _DONE & ~Q(check_outcome="") & ~Q(outcome_source=OutcomeSource.CHECKS)


def grouped_counts_queryset(trials: QuerySet) -> QuerySet:
    """The one aggregation query behind every leaderboard: a row per (policy version, task
    version, condition) with the counts `scoring.CellCounts` holds, and the checked trials
    by (outcome, check verdict) (`check_agreement_counts`)."""
    reasons = {
        f"invalid_{reason}": Count("pk", filter=_INVALID & Q(invalid_reason=reason))
        for reason in scoring.INVALID_REASONS
    }
    checked = {
        f"checked_{outcome}_{check}": Count(
            "pk", filter=_CHECKED & Q(outcome=outcome, check_outcome=check)
        )
        for outcome, check in _CHECK_PAIRS
    }
    return (
        trials.order_by()
        .values("policy_version_id", "task_version_id", "condition_id")
        .annotate(
            k=Count("pk", filter=_DONE & Q(outcome="success")),
            n=Count("pk", filter=_DONE),
            invalid=Count("pk", filter=_INVALID),
            remaining=Count("pk", filter=_OPEN),
            stage_sum=Sum("stage_score", filter=_DONE),
            disagreements=Count("pk", filter=_DONE & Q(check_disagrees=True)),
            **reasons,
            **checked,
        )
    )


def _cell_counts(row: dict[str, Any]) -> scoring.CellCounts:
    return scoring.CellCounts(
        policy=str(row["policy_version_id"]),
        task=str(row["task_version_id"]),
        condition=str(row["condition_id"]),
        successes=row["k"],
        trials=row["n"],
        invalid=row["invalid"],
        remaining=row["remaining"],
        stage_score_sum=float(row["stage_sum"] or 0.0),
        disagreements=row["disagreements"],
        invalid_by_reason={
            reason: row[f"invalid_{reason}"]
            for reason in scoring.INVALID_REASONS
            if row[f"invalid_{reason}"]
        },
    )


def grouped_counts(trials: QuerySet) -> list[scoring.CellCounts]:
    return [_cell_counts(row) for row in grouped_counts_queryset(trials)]


def check_agreement_counts(rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """{(outcome, check verdict): trials} over the done trials that have both an outcome a
    robot or person reported and a verdict of the task's automatic check, summed from the
    rows of `grouped_counts_queryset` (no query of its own)."""
    table = {
        (outcome, check): sum(row[f"checked_{outcome}_{check}"] for row in rows)
        for outcome, check in _CHECK_PAIRS
    }
    return {pair: n for pair, n in table.items() if n}


def _counts_digest(counts: list[scoring.CellCounts], design: dict[str, Any]) -> str:
    canonical = sorted(
        (
            c.policy,
            c.task,
            c.condition,
            c.successes,
            c.trials,
            c.invalid,
            c.remaining,
            round(c.stage_score_sum, 9),
            c.disagreements,
            sorted(c.invalid_by_reason.items()),
        )
        for c in counts
    )
    text = json.dumps([design, canonical], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def check_agreement(counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    """How well reported outcomes and automatic checks agree (docs/statistics.md): `n`
    trials with both, `observed_agreement` (share with the same label), Cohen's `kappa`
    with its 95% interval [`low`, `high`], and `disagreements`. `kappa` is None, with a
    `reason`, when it is undefined: no trial has both, or both raters gave every trial the
    same label (then the raw agreement is still reported)."""
    n = sum(counts.values())
    agree = sum(items for (outcome, check), items in counts.items() if outcome == check)
    summary: dict[str, Any] = {
        "n": n,
        "observed_agreement": agree / n if n else None,
        "kappa": None,
        "low": None,
        "high": None,
        "disagreements": n - agree,
        "reason": None,
    }
    if not n:
        return summary | {
            "reason": "No counted trial has both a reported outcome and an automatic check."
        }
    try:
        kappa = cohens_kappa_from_counts(counts, interval="agreement-score")
    except ValueError:
        (label,) = {label for pair in counts for label in pair if counts[pair]}
        return summary | {
            "reason": f"Every trial was labelled {label} by both: kappa is undefined "
            "(chance alone explains the agreement); the raw agreement is reported."
        }
    return summary | {"kappa": kappa.kappa, "low": kappa.low, "high": kappa.high}


# --- Leaderboards ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaderboard:
    """A computed leaderboard: the scoreboard of `proving_ground.scoring` and the labels of its
    policies, tasks and conditions. `to_dict()` is what a snapshot stores and the API serves
    (operators appear nowhere; policies by name and version, or by alias when blinded)."""

    scope: str
    id: str
    name: str
    scoring_version: str
    counts_digest: str
    trials_counted: int
    compute_s: float
    tasks: tuple[dict[str, Any], ...]
    conditions: tuple[dict[str, Any], ...]
    policies: dict[str, dict[str, Any]]
    board: scoring.Scoreboard
    campaigns: tuple[str, ...] = field(default=())
    # pg-score/2 only (absent from pg-score/1 dicts): operators vs automatic checks.
    check_agreement: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        board = self.board.to_dict()
        rows = []
        for row in board.pop("rows"):
            label = self.policies[row.pop("policy")]
            rows.append(label | row)
        # Pairs name policy versions by id, whatever key the scoring ran on (an alias in a
        # blinded campaign); `blinded_leaderboard` turns them back into aliases.
        board["pairwise"] = [
            pair
            | {
                "first": self.policies[pair["first"]]["policy_version"],
                "second": self.policies[pair["second"]]["policy_version"],
            }
            for pair in board.get("pairwise", [])
        ]
        return {
            "scope": self.scope,
            "id": self.id,
            "name": self.name,
            "campaigns": list(self.campaigns),
            "tasks": list(self.tasks),
            "conditions": list(self.conditions),
            **board,
            **({"check_agreement": self.check_agreement} if self.check_agreement else {}),
            "rows": rows,
            "compute_s": round(self.compute_s, 6),
        }


def _task_labels(ids) -> dict[str, dict[str, Any]]:
    return {
        str(v.pk): {
            "id": str(v.pk),
            "task": v.task.slug,
            "name": v.task.name,
            "number": v.number,
            "label": f"{v.task.slug} v{v.number}",
        }
        for v in TaskVersion.objects.filter(pk__in=ids).select_related("task")
    }


def _condition_labels(ids) -> dict[str, dict[str, Any]]:
    return {
        str(c.pk): {
            "id": str(c.pk),
            "factor": c.factor,
            "level": c.level,
            "label": f"{c.factor}: {c.level}",
        }
        for c in Condition.objects.filter(pk__in=ids)
    }


def _policy_labels(versions, aliases: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    return {
        str(v.pk): {
            "policy_version": str(v.pk),
            "policy_id": str(v.policy_id),
            "policy": v.policy.name,
            "version": v.label,
            "alias": (aliases or {}).get(str(v.pk)),
        }
        for v in versions
    }


def alias_sort_key(alias: str) -> tuple[int, str]:
    """Aliases in their own order: "policy B" before "policy AA" (bijective base 26)."""
    return (len(alias), alias)


@dataclass(frozen=True)
class PreparedLeaderboard:
    """A leaderboard counted but not yet scored: the grouped counts, the design and the
    labels. `counts_digest` and `cache_key` are known before the (costly) scoring."""

    scope: str
    target: Any
    counts: list[scoring.CellCounts]
    order: list[str]
    cells: list[tuple[str, str]]
    policies: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    conditions: dict[str, dict[str, Any]]
    campaigns: tuple[str, ...]
    agreement_counts: dict[tuple[str, str], int] | None
    counts_digest: str
    started: float

    @property
    def cache_key(self) -> str:
        """Names the board this scoring gives: the counts digest (counts, design, scoring
        version, check verdicts) and a digest of every label it shows (the target's name,
        policies, tasks, conditions, pooled campaigns), so a new trial or a rename is a new
        key and a key is never stale."""
        labels = [self.target.name, self.policies, self.tasks, self.conditions, self.campaigns]
        text = json.dumps(labels, sort_keys=True, separators=(",", ":"), default=str)
        digest = hashlib.sha256(f"{self.counts_digest}:{text}".encode()).hexdigest()
        return (
            f"pg:leaderboard:{self.scope}:{self.target.pk}:{self.target.scoring_version}:{digest}"
        )

    def score(self) -> Leaderboard:
        board = scoring.score(
            self.counts,
            policies=self.order,
            cells=self.cells,
            version=self.target.scoring_version,
        )
        agreement = None
        if self.agreement_counts is not None:
            agreement = check_agreement(self.agreement_counts)
        return Leaderboard(
            scope=self.scope,
            id=str(self.target.pk),
            name=self.target.name,
            scoring_version=board.scoring_version,
            counts_digest=self.counts_digest,
            trials_counted=board.trials + board.invalid,
            compute_s=time.perf_counter() - self.started,
            tasks=tuple(self.tasks[t] for t in dict.fromkeys(t for t, _ in self.cells)),
            conditions=tuple(self.conditions[c] for c in dict.fromkeys(c for _, c in self.cells)),
            policies=self.policies,
            board=board,
            campaigns=self.campaigns,
            check_agreement=agreement,
        )


def _prepare_leaderboard(
    *,
    scope: str,
    target,
    trials: QuerySet,
    cells: list[tuple[str, str]],
    versions: list[PolicyVersion] | None,
    aliases: dict[str, str] | None,
    campaigns: tuple[str, ...] = (),
    blind_keys: bool = False,
) -> PreparedLeaderboard:
    started = time.perf_counter()
    rows = list(grouped_counts_queryset(trials))
    counts = [_cell_counts(row) for row in rows]
    if versions is None:  # a benchmark: every policy version with trials on it
        ids = {c.policy for c in counts}
        versions = list(PolicyVersion.objects.filter(pk__in=ids).select_related("policy"))
    policies = _policy_labels(versions, aliases)
    if blind_keys:
        # Blinding by construction: the scoring sees aliases, never ids or names, so every
        # order it produces (input order, pairs, ties, unranked rows) follows the aliases,
        # which the seed shuffled; nothing in the board's order follows a name or an id.
        key_of = {pv: label["alias"] for pv, label in policies.items()}
        counts = [dataclasses.replace(c, policy=key_of.get(c.policy, c.policy)) for c in counts]
        policies = {key_of[pv]: label for pv, label in policies.items()}
        order = sorted(policies, key=alias_sort_key)
    else:
        order = sorted(
            policies, key=lambda pv: (policies[pv]["policy"], policies[pv]["version"], pv)
        )
    tasks = _task_labels({t for t, _ in cells})
    conditions = _condition_labels({c for _, c in cells})
    cells = sorted(cells, key=lambda cell: (tasks[cell[0]]["label"], conditions[cell[1]]["label"]))
    design: dict[str, Any] = {
        "policies": order,
        "cells": cells,
        "version": target.scoring_version,
    }
    agreement_counts = None
    if scoring.SCORING_VERSIONS[target.scoring_version].estimand != "pooled":
        # pg-score/2 boards only (pg-score/1 digests and keys stay as they were); in the
        # digest, so a new check verdict refreshes the board.
        agreement_counts = check_agreement_counts(rows)
        design["check_agreement"] = sorted(
            [outcome, check, n] for (outcome, check), n in agreement_counts.items()
        )
    return PreparedLeaderboard(
        scope=scope,
        target=target,
        counts=counts,
        order=order,
        cells=cells,
        policies=policies,
        tasks=tasks,
        conditions=conditions,
        campaigns=campaigns,
        agreement_counts=agreement_counts,
        counts_digest=_counts_digest(counts, design),
        started=started,
    )


def campaign_leaderboard(campaign: Campaign) -> Leaderboard:
    """One row per policy version of the campaign, over the campaign's cells."""
    return prepare_campaign_leaderboard(campaign).score()


def prepare_campaign_leaderboard(campaign: Campaign) -> PreparedLeaderboard:
    """`campaign_leaderboard`, counted but not yet scored."""
    versions = list(campaign.policy_versions.select_related("policy"))
    # The aliases are a function of the policy ids and the seed (scheduling.alias_map), so
    # they need no pass over the trials.
    aliases = scheduling.alias_map([str(v.pk) for v in versions], campaign.seed)
    cells = [
        (str(t), str(c)) for t, c in campaign.cells.values_list("task_version_id", "condition_id")
    ]
    return _prepare_leaderboard(
        scope="campaign",
        target=campaign,
        trials=Trial.objects.filter(campaign=campaign),
        cells=cells,
        versions=versions,
        aliases=aliases,
        blind_keys=campaign.blinded,
    )


def benchmark_leaderboard(benchmark: Benchmark, *, reader=EVERYONE) -> Leaderboard:
    """One row per policy version that ran on the benchmark in a pooled campaign
    (`leaderboard_campaigns`), over the benchmark's cells. For a `reader`, only the pooled
    campaigns and the policies that reader may see count (`readable_leaderboard_trials`)."""
    return prepare_benchmark_leaderboard(benchmark, reader=reader).score()


def prepare_benchmark_leaderboard(benchmark: Benchmark, *, reader=EVERYONE) -> PreparedLeaderboard:
    """`benchmark_leaderboard`, counted but not yet scored."""
    campaigns = leaderboard_campaigns(benchmark)
    trials = Trial.objects.filter(campaign__in=campaigns.values("pk"))
    if reader is not EVERYONE:
        campaigns = access.visible(campaigns, reader)
        trials = readable_leaderboard_trials(benchmark, reader)
    cells = [
        (str(t), str(c)) for t, c in benchmark.cells.values_list("task_version_id", "condition_id")
    ]
    return _prepare_leaderboard(
        scope="benchmark",
        target=benchmark,
        trials=trials,
        cells=cells,
        versions=None,
        aliases=None,
        campaigns=tuple(str(pk) for pk in campaigns.values_list("pk", flat=True)),
    )


def readable_leaderboard_trials(benchmark: Benchmark, reader) -> QuerySet:
    """The trials behind a benchmark's leaderboard that `reader` may count: of pooled
    campaigns the reader may see, of policies the reader may see."""
    campaigns = access.visible(leaderboard_campaigns(benchmark), reader)
    return Trial.objects.filter(
        campaign__in=campaigns.values("pk"),
        policy_version__policy__in=access.visible(Policy.objects.all(), reader).values("pk"),
    )


def leaderboard_hides_something_from(benchmark: Benchmark, reader) -> bool:
    """Whether the benchmark's stored leaderboard pools a campaign, or a policy, `reader` may
    not see (then the reader's board is computed from what they may see)."""
    campaigns = leaderboard_campaigns(benchmark)
    if campaigns.exclude(pk__in=access.visible(campaigns, reader).values("pk")).exists():
        return True
    policies = Policy.objects.filter(versions__campaigns__in=campaigns.values("pk"))
    return policies.exclude(
        pk__in=access.visible(Policy.objects.all(), reader).values("pk")
    ).exists()


def hidden_design_ids(reader, task_version_ids, condition_ids) -> tuple[set[str], set[str]]:
    """Of these task versions and conditions, the ids `reader` may not see: two queries,
    whatever the number of ids (a page of benchmarks asks once)."""
    task_version_ids, condition_ids = set(map(str, task_version_ids)), set(map(str, condition_ids))
    seen_tasks = {
        str(pk)
        for pk in TaskVersion.objects.filter(
            pk__in=task_version_ids,
            task__in=access.visible(Task.objects.all(), reader).values("pk"),
        ).values_list("pk", flat=True)
    }
    seen_conditions = {
        str(pk)
        for pk in access.visible(
            Condition.objects.filter(pk__in=condition_ids), reader
        ).values_list("pk", flat=True)
    }
    return task_version_ids - seen_tasks, condition_ids - seen_conditions


def design_placeholders(
    task_version_ids: list[str], condition_ids: list[str], hidden: tuple[set[str], set[str]]
) -> tuple[dict[str, str], dict[str, str]]:
    """The labels that stand for hidden task versions and conditions (`hidden_design_ids`):
    "hidden task 2" for the design's second task (in the order given, the board's), so the
    benchmark's answer and its board name a hidden task alike."""
    hidden_tasks, hidden_conditions = hidden
    return (
        {
            t: f"hidden task {n}"
            for n, t in enumerate(task_version_ids, start=1)
            if t in hidden_tasks
        },
        {
            c: f"hidden condition {n}"
            for n, c in enumerate(condition_ids, start=1)
            if c in hidden_conditions
        },
    )


def mask_hidden_design(data: dict[str, Any], reader) -> dict[str, Any]:
    """A benchmark leaderboard with the labels of task versions and conditions `reader` may
    not see replaced by placeholders (ids kept, so figures still line up). Benchmarks that
    others read cannot reference such tasks or conditions (`services.benchmarks`), but one may
    be made less visible after."""
    task_ids = [t["id"] for t in data["tasks"]]
    condition_ids = [c["id"] for c in data["conditions"]]
    hidden = hidden_design_ids(reader, task_ids, condition_ids)
    if not any(hidden):
        return data
    task_labels, condition_labels = design_placeholders(task_ids, condition_ids, hidden)
    tasks = [
        t | {"task": "", "name": "", "label": task_labels[t["id"]]} if t["id"] in task_labels else t
        for t in data["tasks"]
    ]
    conditions = [
        c | {"factor": "", "level": "", "label": condition_labels[c["id"]]}
        if c["id"] in condition_labels
        else c
        for c in data["conditions"]
    ]
    return data | {"tasks": tasks, "conditions": conditions}


_POLICY_KEYS = ("policy_version", "policy_id", "policy", "version")


def blinded_leaderboard(data: dict[str, Any]) -> dict[str, Any]:
    """A campaign leaderboard as a blinded viewer may see it: aliases only, no policy name,
    version or id anywhere."""
    alias_of = {row["policy_version"]: row["alias"] for row in data["rows"]}
    rows = [{k: v for k, v in row.items() if k not in _POLICY_KEYS} for row in data["rows"]]
    pairwise = [
        pair | {"first": alias_of.get(pair["first"]), "second": alias_of.get(pair["second"])}
        for pair in data.get("pairwise", [])
    ]
    return data | {"rows": rows, "pairwise": pairwise, "blinded": True}


# --- Progress -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellProgress:
    task_version_id: str
    task: str
    condition_id: str
    condition: str
    planned: int
    done: int
    invalid: int
    assigned: int
    remaining: int


@dataclass(frozen=True)
class CampaignProgress:
    planned: int
    done: int
    invalid: int
    assigned: int
    remaining: int
    cells: list[CellProgress]


def campaign_progress(campaign: Campaign) -> CampaignProgress:
    """Per cell: planned trials, done, invalid, held by a robot, and remaining (scheduled or
    held). One grouped query."""
    rows = (
        Trial.objects.filter(campaign=campaign)
        .order_by()
        .values("task_version_id", "condition_id")
        .annotate(
            planned=Count("pk"),
            done=Count("pk", filter=_DONE),
            invalid=Count("pk", filter=_INVALID),
            assigned=Count("pk", filter=Q(state=Trial.State.ASSIGNED)),
            remaining=Count("pk", filter=_OPEN),
        )
    )
    found = {(str(r["task_version_id"]), str(r["condition_id"])): r for r in rows}
    cells = [
        (str(t), str(c)) for t, c in campaign.cells.values_list("task_version_id", "condition_id")
    ]
    tasks = _task_labels({t for t, _ in cells})
    conditions = _condition_labels({c for _, c in cells})
    out = []
    for task_id, condition_id in sorted(
        cells, key=lambda c: (tasks[c[0]]["label"], conditions[c[1]]["label"])
    ):
        row = found.get((task_id, condition_id), {})
        out.append(
            CellProgress(
                task_version_id=task_id,
                task=tasks[task_id]["label"],
                condition_id=condition_id,
                condition=conditions[condition_id]["label"],
                planned=row.get("planned", 0),
                done=row.get("done", 0),
                invalid=row.get("invalid", 0),
                assigned=row.get("assigned", 0),
                remaining=row.get("remaining", 0),
            )
        )
    return CampaignProgress(
        planned=sum(c.planned for c in out),
        done=sum(c.done for c in out),
        invalid=sum(c.invalid for c in out),
        assigned=sum(c.assigned for c in out),
        remaining=sum(c.remaining for c in out),
        cells=out,
    )


def with_trial_counts(campaigns: QuerySet) -> QuerySet:
    """Campaigns annotated with `planned` (all their trials) and `settled` (done or invalid)."""
    return campaigns.annotate(
        planned=Count("trials"),
        settled=Count(
            "trials", filter=Q(trials__state__in=[Trial.State.DONE, Trial.State.INVALID])
        ),
    )


def schedule_matches_fingerprint(campaign: Campaign) -> bool:
    """Recompute the fingerprint of the trials stored for a campaign and compare it with the
    one stored at start: True when the trials are exactly the schedule that was generated."""
    rows = (
        Trial.objects.filter(campaign=campaign)
        .order_by("order")
        .values_list(
            "order",
            "block",
            "policy_version_id",
            "alias",
            "task_version_id",
            "condition_id",
            "robot_id",
            "pair_id",
            "pair_position",
        )
    )
    dealt = campaign.robot_assignment == Campaign.RobotAssignment.DEALT
    trials = [
        scheduling.ScheduledTrial(
            order=o,
            block=b,
            policy_id=str(p),
            alias=a,
            task_version_id=str(t),
            condition_id=str(c),
            robot_id=str(r) if dealt else None,  # a shared queue schedules no robot
            pair_id=pid,
            pair_position=pos,
        )
        for o, b, p, a, t, c, r, pid, pos in rows
    ]
    return bool(campaign.schedule_fingerprint) and (
        scheduling.schedule_fingerprint(trials) == campaign.schedule_fingerprint
    )


# --- Two policies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyComparison:
    """A vs B in one campaign (or benchmark): the unpaired comparison on pooled counts
    (difference with Newcombe's interval, exact test), and for paired campaigns McNemar's
    exact test on the discordant pairs and the state of the sequential test."""

    a: str
    b: str
    unpaired: dict[str, Any] | None
    paired: dict[str, Any] | None
    sequential: dict[str, Any] | None
    notes: list[str]


def compare_policies(trials: QuerySet, a: str, b: str, *, a_label: str, b_label: str):
    """Compare policy versions `a` and `b` (ids) on `trials`; labels name them in the
    answer (aliases for a blinded viewer)."""
    notes = []
    totals = {
        str(row["policy_version_id"]): (row["k"], row["n"])
        for row in trials.filter(policy_version_id__in=[a, b])
        .order_by()
        .values("policy_version_id")
        .annotate(k=Count("pk", filter=_DONE & Q(outcome="success")), n=Count("pk", filter=_DONE))
    }
    a_k, a_n = totals.get(a, (0, 0))
    b_k, b_n = totals.get(b, (0, 0))
    unpaired = None
    if a_n and b_n:
        unpaired = compare_two_policies(a_k, a_n, b_k, b_n).to_dict()
    else:
        notes.append("Each policy needs at least one counted trial for the unpaired comparison.")

    paired = sequential = None
    pair_rows = (
        trials.filter(policy_version_id__in=[a, b], pair_id__isnull=False)
        .order_by("pair_id")
        .values_list("pair_id", "policy_version_id", "state", "outcome", "reported_at")
    )
    pairs: dict[int, dict[str, tuple]] = defaultdict(dict)
    for pair_id, version, state, outcome, reported_at in pair_rows:
        pairs[pair_id][str(version)] = (state, outcome, reported_at)
    planned = [p for p in pairs.values() if a in p and b in p]
    if planned:
        complete = [
            p for p in planned if p[a][0] == Trial.State.DONE and p[b][0] == Trial.State.DONE
        ]
        # Evidence in the order it arrived: a pair counts when its second trial is reported.
        complete.sort(key=lambda p: max(p[a][2], p[b][2]))
        a_outcomes = [int(p[a][1] == "success") for p in complete]
        b_outcomes = [int(p[b][1] == "success") for p in complete]
        a_only = sum(1 for x, y in zip(a_outcomes, b_outcomes, strict=True) if x and not y)
        b_only = sum(1 for x, y in zip(a_outcomes, b_outcomes, strict=True) if y and not x)
        paired = {
            "pairs_planned": len(planned),
            "pairs_complete": len(complete),
            "both_success": sum(1 for x, y in zip(a_outcomes, b_outcomes, strict=True) if x and y),
            "both_failure": sum(
                1 for x, y in zip(a_outcomes, b_outcomes, strict=True) if not x and not y
            ),
            "a_only": a_only,
            "b_only": b_only,
            "mcnemar_p": mcnemar_exact(a_only, b_only),
        }
        sequential = sequential_paired_test(
            a_outcomes, b_outcomes, max_pairs=len(planned)
        ).to_dict()
    else:
        notes.append("No A/B pairs of these two policies (interleaved mode): unpaired only.")
    return PolicyComparison(
        a=a_label, b=b_label, unpaired=unpaired, paired=paired, sequential=sequential, notes=notes
    )
