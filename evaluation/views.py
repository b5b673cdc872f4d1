"""Pages of the evaluation app, and the home page (evaluation is the one app that sees the
other two: `evaluation -> teleop -> core`)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.shortcuts import get_object_or_404, render

from core import access
from evaluation import selectors, services
from evaluation.models import Benchmark, Campaign, LeaderboardSnapshot, PolicyVersion, Trial
from teleop.models import Episode, Label, Session


@login_required
def home(request):
    """My open sessions, episodes waiting for a label, campaigns in progress, rejections."""
    user = request.user
    teams = access.team_ids(user)

    def mine(queryset):
        return queryset if user.is_superuser else queryset.filter(team_id__in=teams)

    current = Label.objects.filter(episode=OuterRef("pk"), superseded_at=None)
    context = {
        "sessions": mine(Session.objects.filter(status=Session.Status.OPEN)).select_related(
            "robot", "operator", "task_version__task"
        )[:20],
        "unlabelled": mine(Episode.objects.filter(state=Episode.State.READY, discarded_at=None))
        .filter(~Exists(current))
        .select_related("robot", "task_version__task")
        .order_by("-created_at")[:20],
        "campaigns": access.visible(
            Campaign.objects.filter(status=Campaign.Status.RUNNING), user
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


def leaderboard(request, pk):
    """One benchmark's leaderboard: macro success with an interval bar, n, invalid trials,
    letter groups, rank interval, worst condition; per-task and per-condition heat maps."""
    benchmark = get_object_or_404(_benchmarks(request), pk=pk)
    data = services.leaderboard_data(LeaderboardSnapshot.Scope.BENCHMARK, benchmark)
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
            "tasks": list(tasks.values()),
            "conditions": list(conditions.values()),
        },
    )


def leaderboard_compare(request, pk):
    """Two policies side by side: difference with its interval, exact test, sequential test."""
    benchmark = get_object_or_404(_benchmarks(request), pk=pk)
    versions = {
        str(v.pk): v
        for v in PolicyVersion.objects.filter(
            trials__campaign__in=selectors.leaderboard_campaigns(benchmark)
        )
        .distinct()
        .select_related("policy")
    }
    a, b = request.GET.get("a"), request.GET.get("b")
    comparison = None
    if a in versions and b in versions and a != b:
        trials = Trial.objects.filter(campaign__in=selectors.leaderboard_campaigns(benchmark))
        comparison = selectors.compare_policies(
            trials, a, b, a_label=str(versions[a]), b_label=str(versions[b])
        )
    elif a or b:
        messages.error(request, "Choose two different policies of this leaderboard.")
    return render(
        request,
        "evaluation/compare.html",
        {
            "benchmark": benchmark,
            "versions": versions.values(),
            "a": a,
            "b": b,
            "comparison": comparison,
        },
        status=400 if (a or b) and comparison is None else 200,
    )
