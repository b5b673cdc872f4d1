"""Pages of the evaluation app, and the home page (evaluation is the one app that sees the
other two: `evaluation -> teleop -> core`)."""

import math

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from core import access, rights
from core.errors import DomainError
from evaluation import selectors
from evaluation.forms import TrialReportForm
from evaluation.models import Benchmark, Campaign, LeaderboardSnapshot, PolicyVersion, Trial
from evaluation.services import leaderboards
from evaluation.services import trials as trial_services
from teleop.models import Episode, Label, Session


@login_required
def home(request):
    """My open sessions, episodes waiting for a label, campaigns in progress, rejections."""
    user = request.user

    def mine(queryset):
        return access.in_my_teams(queryset, user)

    current = Label.objects.filter(episode=OuterRef("pk"), superseded_at=None)
    context = {
        "sessions": mine(Session.objects.filter(status=Session.Status.OPEN)).select_related(
            "robot", "operator", "task_version__task"
        )[:20],
        "unlabelled": mine(Episode.objects.filter(state=Episode.State.READY, discarded_at=None))
        .filter(~Exists(current))
        .select_related("robot", "task_version__task")
        .order_by("-created_at")[:20],
        "campaigns": selectors.with_trial_counts(
            access.visible(Campaign.objects.filter(status=Campaign.Status.RUNNING), user)
        ).order_by("-started_at")[:20],
        "rejections": mine(Episode.objects.filter(state=Episode.State.REJECTED))
        .select_related("robot")
        .order_by("-updated_at")[:10],
    }
    return render(request, "evaluation/home.html", context)


# --- Leaderboards (public for public benchmarks) ------------------------------------------


def _benchmarks(request):
    return access.visible(Benchmark.objects.filter(published_at__isnull=False), request.user)


def leaderboard_list(request):
    return render(
        request,
        "evaluation/leaderboard_list.html",
        {"benchmarks": _benchmarks(request).select_related("team").order_by("name")},
    )


def _percent(value):
    return None if value is None else round(100 * value, 1)


def _agreement(agreement):
    """The board's operators-vs-checks line, with the share agreeing in whole percent rounded
    down (99.6% is "99%": "100%" would hide a disagreement). None without such trials."""
    if not agreement or not agreement["n"]:
        return None
    return agreement | {"percent": math.floor(100 * agreement["observed_agreement"] + 1e-9)}


def leaderboard(request, pk):
    """One benchmark's leaderboard: macro success with an interval bar, n, invalid trials,
    letter groups, rank interval, worst condition; per-task and per-condition heat maps."""
    benchmark = get_object_or_404(_benchmarks(request), pk=pk)
    data = leaderboards.leaderboard_data(
        LeaderboardSnapshot.Scope.BENCHMARK, benchmark, reader=request.user
    )
    tasks = {t["id"]: t for t in data["tasks"]}
    conditions = {c["id"]: c for c in data["conditions"]}
    rows = []
    for row in sorted(data["rows"], key=lambda r: (r["rank"] is None, r["rank"] or 0)):
        by_task = {c["task"]: c for c in row["tasks"]}
        by_condition = {c["condition"]: c for c in row["conditions"]}
        worst = row.get("worst_condition")
        rows.append(
            row
            | {
                "bar": {
                    "low": _percent(row["macro_low"]),
                    "high": _percent(row["macro_high"]),
                    "point": _percent(row["macro"]),
                },
                "task_cells": [by_task.get(t) for t in tasks],
                "condition_cells": [by_condition.get(c) for c in conditions],
                "worst_label": conditions.get(worst["condition"], {}).get("label")
                if worst
                else None,
            }
        )
    return render(
        request,
        "evaluation/leaderboard.html",
        {
            "benchmark": benchmark,
            "data": data,
            "rows": rows,
            # pg-score/2 boards carry the Bayesian view (absent from pg-score/1 rows).
            "bayes": any("posterior_mean" in row for row in rows),
            "agreement": _agreement(data.get("check_agreement")),
            # What the interval chart draws (leaderboard.js), not the whole rows.
            "chart": [
                {
                    k: row[k]
                    for k in ("policy_version", "policy", "version", "rank", "trials", "bar")
                }
                for row in rows
            ],
            "tasks": list(tasks.values()),
            "conditions": list(conditions.values()),
        },
    )


def leaderboard_compare(request, pk):
    """Two policies side by side: difference with its interval, exact test, sequential test."""
    benchmark = get_object_or_404(_benchmarks(request), pk=pk)
    # Only campaigns and policies the reader may see (as on the leaderboard itself).
    trials = selectors.readable_leaderboard_trials(benchmark, request.user)
    versions = {
        str(v.pk): v
        for v in PolicyVersion.objects.filter(pk__in=trials.values("policy_version_id"))
        .distinct()
        .select_related("policy")
    }
    a, b = request.GET.get("a"), request.GET.get("b")
    chosen = bool(a or b)
    board = leaderboards.leaderboard_data(
        LeaderboardSnapshot.Scope.BENCHMARK, benchmark, reader=request.user
    )
    if not chosen:
        # Nothing chosen yet: the board's top two rows (none on a board of fewer), compared.
        a, b = (_top_two(board, versions) + [None, None])[:2]
    comparison = board_pair = None
    problem = ""
    if a == b and a in versions:
        problem = (
            f"A and B are both {versions[a]}: a policy is not compared with itself. "
            "Choose two different policies."
        )
    elif a in versions and b in versions:
        comparison = selectors.compare_policies(
            trials, a, b, a_label=str(versions[a]), b_label=str(versions[b])
        )
        board_pair = _board_pair(board, a, b)
    elif chosen:
        problem = "Choose two policies of this leaderboard."
    return render(
        request,
        "evaluation/compare.html",
        {
            "benchmark": benchmark,
            "versions": versions.values(),
            "a": a,
            "b": b,
            "comparison": comparison,
            "board_pair": board_pair,
            "problem": problem,
        },
        # The same policy twice is a choice to correct, answered on the page; an id that is
        # not on this board is a bad request.
        status=400 if problem and not (a == b and a in versions) else 200,
    )


def _board_pair(board: dict, a: str, b: str) -> dict | None:
    """The leaderboard's own comparison of A and B, oriented A - B, on a board whose pairs
    test its ranking's estimand (pg-score/2: the macro average); None on pg-score/1 boards,
    whose pairs are the pooled comparison this page shows anyway. The page shows it first,
    so the page cannot contradict the board."""
    if board.get("scoring_version") == "pg-score/1":
        return None
    for pair in board.get("pairwise", []):
        if {pair["first"], pair["second"]} != {a, b}:
            continue
        if pair["first"] == a:
            return pair
        return pair | {
            "first": a,
            "second": b,
            "difference": -pair["difference"],
            "difference_low": -pair["difference_high"],
            "difference_high": -pair["difference_low"],
        }
    return None


def _top_two(data: dict, versions: dict) -> list[str]:
    """The ids of the two best-ranked different policy versions on the reader's board `data`
    (fewer when the board has fewer), in rank order."""
    ranked = sorted(data["rows"], key=lambda r: (r.get("rank") is None, r.get("rank") or 0))
    top: list[str] = []
    for row in ranked:
        version = str(row.get("policy_version") or "")
        if version in versions and version not in top:
            top.append(version)
    return top[:2]


# --- Evaluation console ---------------------------------------------------------------------


def _campaigns(request):
    return access.visible(Campaign.objects.all(), request.user).select_related("team", "benchmark")


@login_required
def campaign_list(request):
    campaigns = selectors.with_trial_counts(_campaigns(request)).order_by("status", "-created_at")
    return render(
        request,
        "evaluation/campaign_list.html",
        {
            "campaigns": campaigns[:200],
            "may_author": rights.teams_where(request.user, rights.Right.AUTHOR).exists(),
        },
    )


def _trial_label(trial: Trial, blinded: bool) -> str:
    """What a person sees for a trial's policy: the alias alone while they are blinded."""
    if blinded:
        return trial.alias
    return f"{trial.policy_version} ({trial.alias})"


def _trials(campaign):
    return Trial.objects.filter(campaign=campaign).select_related(
        "policy_version__policy", "task_version__task", "condition", "robot", "operator"
    )


def _console_context(request, campaign, forms_by_trial=None):
    user = request.user
    blinded = selectors.is_blinded_for(user, campaign)
    may_score = (
        trial_services.may_score(user, campaign) and campaign.status == Campaign.Status.RUNNING
    )
    held = {t.robot_id: t for t in _trials(campaign).filter(state=Trial.State.ASSIGNED)}
    waiting = dict(
        Trial.objects.filter(campaign=campaign, state=Trial.State.SCHEDULED)
        .order_by()
        .values("robot_id")
        .annotate(n=Count("pk"))
        .values_list("robot_id", "n")
    )
    robots = []
    for robot in campaign.robots.order_by("name"):
        trial = held.get(robot.pk)
        if trial is not None:
            trial.label = _trial_label(trial, blinded)
            form = (forms_by_trial or {}).get(trial.pk) or TrialReportForm.for_trial(trial)
        else:
            form = None
        robots.append(
            {"robot": robot, "trial": trial, "form": form, "queued": waiting.get(robot.pk, 0)}
        )
    recent = list(
        _trials(campaign)
        .filter(state__in=[Trial.State.DONE, Trial.State.INVALID])
        .order_by("-reported_at")[:15]
    )
    for trial in recent:
        trial.label = _trial_label(trial, blinded)
    return {
        "campaign": campaign,
        "progress": selectors.campaign_progress(campaign),
        "blinded": blinded,
        "may_score": may_score,
        "robots": robots,
        "several_forms": may_score and sum(entry["form"] is not None for entry in robots) > 1,
        "unassigned": waiting.get(None, 0),
        "recent": recent,
        # Start, finish and unblind (evaluation/authoring_views.py) for the team's authors;
        # a campaign's own operators are blinded and cannot unblind it.
        "may_direct": rights.may(user, rights.Right.AUTHOR, campaign.team_id),
        "may_unblind": campaign.blinded
        and campaign.status != Campaign.Status.DONE
        and not any(op.user_id == user.pk for op in campaign.operators.all()),
    }


@login_required
def campaign_console(request, pk):
    """A campaign's progress per cell, each robot's current trial (alias, condition and its
    reset instructions) with the form to score it, and the latest results to correct."""
    campaign = get_object_or_404(_campaigns(request), pk=pk)
    return render(request, "evaluation/campaign_console.html", _console_context(request, campaign))


@login_required
@require_POST
def campaign_next_trial(request, pk, robot_pk):
    campaign = get_object_or_404(_campaigns(request), pk=pk)
    robot = get_object_or_404(campaign.robots.all(), pk=robot_pk)
    if not trial_services.may_score(request.user, campaign):
        raise PermissionDenied("Only operators and admins of the campaign's team run trials.")
    return _start_next(request, campaign, robot)


def _start_next(request, campaign, robot):
    """Hand `robot` its next trial and go back to its card on the console."""
    try:
        trial = trial_services.next_trial_for_robot(
            actor=request.user, campaign=campaign, robot=robot
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("campaign", campaign.pk)
    if trial is None:
        messages.info(request, f"No trial is left for {robot.name}.")
    return redirect(f"{reverse('campaign', args=[campaign.pk])}#robot-{robot.pk}")


def _score(request, trial: Trial, form: TrialReportForm) -> Trial | None:
    """Report (or correct) a trial from a valid form; a refusal goes back onto the form."""
    data = form.cleaned_data
    valid = data["valid"] == "yes"
    try:
        return trial_services.report_trial_result(
            actor=request.user,
            trial=trial,
            outcome=data["outcome"] or None,
            stages_reached=data["stages_reached"],
            failure_codes=data["failure_codes"],
            valid=valid,
            invalid_reason="" if valid else data["invalid_reason"],
            notes=data["notes"],
        )
    except DomainError as exc:
        shown = [field for field in exc.fields or {} if field in form.fields]
        for field in shown:
            problems = exc.fields[field]
            form.add_error(field, problems if isinstance(problems, list) else [problems])
        if not shown:  # the message says it once, beside the field it is about
            form.add_error(None, exc.detail)
        return None


def _campaign_trial(request, pk) -> Trial:
    return get_object_or_404(
        Trial.objects.select_related(
            "campaign", "policy_version__policy", "task_version__task", "condition", "robot"
        ),
        pk=pk,
        campaign__in=_campaigns(request),
    )


@login_required
def trial_detail(request, pk):
    """One trial: what was run, its report history, and the form to score or correct it."""
    trial = _campaign_trial(request, pk)
    campaign = trial.campaign
    blinded = selectors.is_blinded_for(request.user, campaign)
    may_score = (
        trial_services.may_score(request.user, campaign) and trial.state != Trial.State.SCHEDULED
    )
    form = None
    status = 200
    if may_score:
        if request.method == "POST":
            form = TrialReportForm.for_trial(trial, request.POST)
            was = trial.state
            if form.is_valid() and _score(request, trial, form) is not None:
                messages.success(
                    request, "Trial scored." if was == Trial.State.ASSIGNED else "Correction saved."
                )
                if was == Trial.State.ASSIGNED and "next" in request.POST and trial.robot:
                    return _start_next(request, campaign, trial.robot)
                return redirect("trial", trial.pk)
            status = 400
            if request.POST.get("from") == "console":
                context = _console_context(request, campaign, {trial.pk: form})
                return render(request, "evaluation/campaign_console.html", context, status=400)
        else:
            form = TrialReportForm.for_trial(trial)
    elif request.method == "POST":
        messages.error(request, "You cannot score this trial.")
        status = 403
    trial.label = _trial_label(trial, blinded)
    reports = list(trial.reports.select_related("operator").order_by("-created_at", "-id"))
    return render(
        request,
        "evaluation/trial.html",
        {
            "trial": trial,
            "campaign": campaign,
            "form": form,
            "reports": reports,
            "blinded": blinded,
        },
        status=status,
    )
