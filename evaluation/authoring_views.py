"""Authoring pages of the evaluation app: policies and their versions, benchmarks (publish),
the campaign planner, and starting, finishing and unblinding a campaign.

Thin, as every page: forms shape the input, the services in `evaluation.services` decide and
write, and a refusal comes back beside the field it names with nothing stored.
`core.access.visible` says what a person sees (another team's private object is a 404) and
`core.rights` what a page offers (seen but not authorable is a 403). Irreversible actions
(publish, start, finish, unblind) ask for confirmation: GET shows what will happen, POST
does it.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Prefetch
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET

from core import access, rights
from core.errors import Conflict, DomainError
from evaluation import planner, selectors
from evaluation.authoring_forms import (
    BenchmarkForm,
    CampaignForm,
    PlanForm,
    PolicyForm,
    PolicyVersionForm,
)
from evaluation.errors import DesignNotVisible
from evaluation.models import Benchmark, Campaign, Policy, PolicyVersion
from evaluation.services import benchmarks as benchmark_services
from evaluation.services import campaigns as campaign_services
from evaluation.services import policies as policy_services

AUTHOR = rights.Right.AUTHOR


def _require_author(request, team_id=None, what="do this") -> None:
    """403 unless the person authors in `team_id` (in some team when None)."""
    if team_id is None:
        allowed = rights.teams_where(request.user, AUTHOR).exists()
    else:
        allowed = rights.may(request.user, AUTHOR, team_id)
    if not allowed:
        raise PermissionDenied(f"Only researchers and admins of the team {what}.")


def _show_refusal(
    form, exc: DomainError, aliases: dict[str, str] | None = None, conflict_field: str = "name"
) -> None:
    """A service's refusal on `form`: each message beside the field it names (a service's
    field name mapped through `aliases`); a conflict naming no field (a name taken) beside
    `conflict_field`; otherwise the detail above the form."""
    aliases = aliases or {}
    placed = False
    for name, problems in (exc.fields or {}).items():
        target = aliases.get(name, name)
        if target in form.fields:
            for problem in problems if isinstance(problems, list) else [problems]:
                form.add_error(target, str(problem))
            placed = True
    if not placed:
        taken = isinstance(exc, Conflict) and conflict_field in form.fields
        form.add_error(conflict_field if taken else None, exc.detail)


def _show_requires_refusal(form: PolicyVersionForm, exc: DomainError) -> None:
    """The contract's problems ("observations/qpos: ...", "cameras: ...") beside their field."""
    problems = (exc.fields or {}).get("requires")
    if not problems:
        _show_refusal(form, exc, conflict_field="label")
        return
    for problem in problems:
        head = str(problem).split(":", 1)[0].split("/", 1)[0].split()[0]
        form.add_error(head if head in form.REQUIRES_FIELDS else None, str(problem))


# --- Policies -------------------------------------------------------------------------------


def _policies(request):
    versions = Prefetch("versions", queryset=PolicyVersion.objects.order_by("-created_at"))
    return (
        access.visible(Policy.objects.select_related("team"), request.user)
        .prefetch_related(versions)
        .order_by("team__name", "name")
    )


@login_required
def policy_list(request):
    policies = list(_policies(request))
    authoring = set(rights.teams_where(request.user, AUTHOR).values_list("pk", flat=True))
    for policy in policies:
        policy.may_author = policy.team_id in authoring
    return render(
        request,
        "evaluation/policy_list.html",
        {"policies": policies, "may_author": bool(authoring)},
    )


@login_required
def policy_new(request):
    """A policy and its first version, in one step: both are stored, or neither."""
    _require_author(request, what="register policies")
    form = PolicyForm(request.POST or None, user=request.user, prefix="policy")
    version_form = PolicyVersionForm(request.POST or None, prefix="version")
    status = 200
    if request.method == "POST":
        if form.is_valid() and version_form.is_valid():
            data = form.cleaned_data
            refused = form
            try:
                with transaction.atomic():
                    policy = policy_services.create_policy(
                        actor=request.user,
                        team=data["team"],
                        name=data["name"],
                        description=data["description"],
                        visibility=data["visibility"],
                        shared_with=data["shared_with"],
                    )
                    refused = version_form
                    version = policy_services.create_policy_version(
                        actor=request.user, policy=policy, **version_form.version_arguments()
                    )
            except DomainError as exc:  # rolled back: the policy is not kept either
                if refused is version_form:
                    _show_requires_refusal(version_form, exc)
                else:
                    _show_refusal(form, exc)
            else:
                messages.success(request, f"Policy {policy.name} registered with {version.label}.")
                return redirect("policies")
        status = 400
    return render(
        request,
        "evaluation/policy_new.html",
        {"form": form, "version_form": version_form},
        status=status,
    )


@login_required
def policy_version_new(request, pk):
    policy = get_object_or_404(_policies(request), pk=pk)
    _require_author(request, policy.team_id, "add versions")
    form = PolicyVersionForm(
        request.POST or None, initial={"label": f"v{policy.versions.count() + 1}"}
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                version = policy_services.create_policy_version(
                    actor=request.user, policy=policy, **form.version_arguments()
                )
            except DomainError as exc:
                _show_requires_refusal(form, exc)
            else:
                messages.success(request, f"{version} registered.")
                return redirect("policies")
        status = 400
    return render(
        request,
        "evaluation/policy_version_new.html",
        {"policy": policy, "form": form, "latest": policy.versions.first()},
        status=status,
    )


# --- Benchmarks -----------------------------------------------------------------------------


def _benchmarks(request):
    return access.visible(Benchmark.objects.select_related("team"), request.user)


@login_required
def benchmark_list(request):
    benchmarks = _benchmarks(request).order_by("team__name", "name")
    return render(
        request,
        "evaluation/benchmark_list.html",
        {
            "benchmarks": benchmarks,
            "may_author": rights.teams_where(request.user, AUTHOR).exists(),
        },
    )


@login_required
def benchmark_new(request):
    _require_author(request, what="define benchmarks")
    # ?task_version=<id> (the task page's "New benchmark with vN") ticks that row.
    form = BenchmarkForm(
        request.POST or None,
        user=request.user,
        initial={"task_versions": request.GET.getlist("task_version")},
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                benchmark = benchmark_services.create_benchmark(
                    actor=request.user,
                    team=data["team"],
                    name=data["name"],
                    description=data["description"],
                    task_versions=data["task_versions"],
                    conditions=data["conditions"],
                    trials_per_cell=data["trials_per_cell"],
                    scoring_version=data["scoring_version"],
                    visibility=data["visibility"],
                    shared_with=data["shared_with"],
                )
            except DomainError as exc:
                _show_refusal(form, exc)
                if isinstance(exc, DesignNotVisible):  # the whole sentence says what to do
                    form.add_error(None, exc.detail)
            else:
                messages.success(
                    request, f"Benchmark {benchmark.name} saved. Publish it to run campaigns."
                )
                return redirect("benchmark", benchmark.pk)
        status = 400
    return render(
        request,
        "evaluation/benchmark_new.html",
        {"form": form, "grid": form.grid()},
        status=status,
    )


def _benchmark_context(request, benchmark) -> dict:
    cells = list(benchmark.cells.select_related("task_version__task", "condition"))
    versions = list(dict.fromkeys(c.task_version for c in cells))
    conditions = list(dict.fromkeys(c.condition for c in cells))
    pairs = {(c.task_version_id, c.condition_id) for c in cells}
    return {
        "benchmark": benchmark,
        "conditions": conditions,
        "rows": [
            (version, [(version.pk, c.pk) in pairs for c in conditions]) for version in versions
        ],
        "cells": len(cells),
        "may_author": rights.may(request.user, AUTHOR, benchmark.team_id),
        "campaigns": access.visible(benchmark.campaigns.all(), request.user).order_by(
            "-created_at"
        )[:20],
    }


@login_required
def benchmark_detail(request, pk):
    benchmark = get_object_or_404(_benchmarks(request), pk=pk)
    return render(
        request, "evaluation/benchmark_detail.html", _benchmark_context(request, benchmark)
    )


@login_required
def benchmark_publish(request, pk):
    """GET asks to confirm; POST publishes (freezes the cells, locks their task versions)."""
    benchmark = get_object_or_404(_benchmarks(request), pk=pk)
    _require_author(request, benchmark.team_id, "publish benchmarks")
    context = _benchmark_context(request, benchmark)
    if request.method == "POST" and not benchmark.is_published:
        try:
            benchmark_services.publish_benchmark(actor=request.user, benchmark=benchmark)
        except DomainError as exc:
            context["refusal"] = exc.detail
            return render(request, "evaluation/benchmark_publish.html", context, status=400)
        messages.success(request, f"Benchmark {benchmark.name} published; its design is frozen.")
        return redirect("benchmark", benchmark.pk)
    return render(request, "evaluation/benchmark_publish.html", context)


# --- Campaigns: the planner -----------------------------------------------------------------


def _plan(form: PlanForm, robots: int = 0, with_power: bool = True) -> dict | None:
    """The planner's figures for a valid PlanForm, with what the page shows beside them
    (without the power when `with_power` is False: `planner.plan_campaign`)."""
    if not form.is_valid():
        return None
    design = form.cells_and_trials()
    if design is None:
        return None
    limits, trials_per_cell = design
    data = form.cleaned_data
    figures = planner.plan_campaign(
        policies=len(data["policy_versions"]),
        time_limits_s=limits,
        trials_per_cell=trials_per_cell,
        mode=data["mode"],
        baseline=data["baseline"],
        difference=data["difference"],
        with_power=with_power,
    )
    minutes = round(figures.duration_s / 60)
    parallel = round(figures.duration_s / 60 / robots) if robots > 1 else None
    m = figures.comparisons
    return {
        "figures": figures,
        "trials_per_cell": trials_per_cell,
        "on_benchmark": data["design"] == "benchmark",  # its trials per cell are frozen
        "duration": _hours(minutes),
        "parallel": _hours(parallel) if parallel is not None else None,
        "robots": robots,
        "paired": figures.test == "mcnemar",
        "alpha_text": f"{figures.alpha:g}"
        if m == 1
        else f"{figures.alpha:g}/{m} = {figures.alpha_per_comparison:.4f}",
        "power_pct": None if figures.power is None else _percent(figures.power),
        "baseline_pct": _percent(figures.baseline),
        "candidate_pct": _percent(figures.candidate),
        "difference_points": _percent(figures.candidate - figures.baseline),
        "target_pct": _percent(planner.TARGET_POWER),
        "test_name": _TEST_NAMES[figures.test],
        "needed_test_name": _TEST_NAMES[figures.needed_test],
        "boschloo_max": planner.BOSCHLOO_PLANNED_MAX,
    }


_TEST_NAMES = {
    "boschloo": "Boschloo's exact test",
    "fisher": "Fisher's exact test",
    "mcnemar": "McNemar's exact test",
}


def _percent(rate: float) -> str:
    """A rate in percent, one decimal at most (0.7 -> "70", 0.6234 -> "62.3")."""
    return f"{round(100 * rate, 1):g}"


def _hours(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{rest} min"


def _plan_html(plan: dict | None, form: PlanForm) -> str:
    return render_to_string("evaluation/_plan_figures.html", {"plan": plan, "plan_form": form})


@login_required
@require_GET
def campaign_plan(request):
    """The planner's figures for the form's current values, as JSON (the page's live panel):
    `{"html": the panel, "figures": {...} or null, "errors": {field: [messages]}}`. With
    `power=later` the power and trials needed are left out (`power_pending`), so the page
    shows the trials and duration at once while the exact tests run in a second request."""
    _require_author(request, what="plan campaigns")
    form = PlanForm(request.GET, user=request.user)
    plan = _plan(
        form,
        robots=len(request.GET.getlist("robots")),
        with_power=request.GET.get("power") != "later",
    )
    return JsonResponse(
        {
            "html": _plan_html(plan, form),
            "figures": plan["figures"].as_json() if plan else None,
            "errors": {name: list(errors) for name, errors in form.errors.items()},
        }
    )


@login_required
def campaign_new(request):
    """The campaign planner: choose the design, see its trials, duration and power (live, and
    on "Preview" without JavaScript), then create the draft campaign."""
    _require_author(request, what="plan campaigns")
    data = request.POST if request.method == "POST" else None
    form = CampaignForm(
        data, user=request.user, initial={"benchmark": request.GET.get("benchmark")}
    )
    plan = None
    status = 200
    if request.method == "POST":
        if "preview" not in data:
            if form.is_valid():
                try:
                    campaign = campaign_services.create_campaign(
                        actor=request.user, **form.campaign_arguments()
                    )
                except DomainError as exc:
                    _show_refusal(form, exc, {"requires": "robots"})
                else:
                    messages.success(
                        request, f"Campaign {campaign.name} planned. Start it when ready."
                    )
                    return redirect("campaign", campaign.pk)
            status = 400
        # Only for a page shown again: the power's exact tests can take seconds.
        plan = _plan(PlanForm(data, user=request.user), robots=len(data.getlist("robots")))
    return render(
        request,
        "evaluation/campaign_new.html",
        {"form": form, "grid": form.grid(), "plan_html": _plan_html(plan, form)},
        status=status,
    )


# --- Campaigns: start, finish, unblind ------------------------------------------------------

_ACTIONS = {
    "start": {
        "title": "Start",
        "button": "Start the campaign",
        "possible": lambda c: c.status == Campaign.Status.DRAFT,
        "not_possible": "Only a draft campaign starts; this one is {status}.",
        "service": campaign_services.start_campaign,
        "done": "Campaign started: its schedule is drawn and robots may ask for trials.",
    },
    "finish": {
        "title": "Finish",
        "button": "Finish the campaign now",
        "possible": lambda c: c.status == Campaign.Status.RUNNING,
        "not_possible": "Only a running campaign finishes; this one is {status}.",
        "service": campaign_services.finish_campaign,
        "done": "Campaign finished: no more trials are handed out.",
    },
    "unblind": {
        "title": "Unblind",
        "button": "Unblind it for everyone",
        "possible": lambda c: c.blinded and c.status != Campaign.Status.DONE,
        "not_possible": "Only a blinded campaign that is not done can be unblinded; this one "
        "is {status}{blinded}.",
        "service": campaign_services.unblind_campaign,
        "done": "Campaign unblinded: everyone who sees it now sees its policies.",
    },
}


@login_required
def campaign_action(request, pk, action):
    """GET asks to confirm `action` (start, finish, unblind: each irreversible); POST does it
    through the campaign service."""
    spec = _ACTIONS[action]
    campaign = get_object_or_404(
        access.visible(Campaign.objects.select_related("team", "benchmark"), request.user), pk=pk
    )
    _require_author(request, campaign.team_id, f"{action} campaigns")
    possible = spec["possible"](campaign)
    refusal = None
    if request.method == "POST" and possible:
        try:
            spec["service"](actor=request.user, campaign=campaign)
        except DomainError as exc:
            refusal = exc.detail
        else:
            messages.success(request, spec["done"])
            return redirect("campaign", campaign.pk)
    progress = None
    if campaign.status != Campaign.Status.DRAFT:
        progress = selectors.campaign_progress(campaign)
    planned = campaign.trials.count() if campaign.status != Campaign.Status.DRAFT else None
    return render(
        request,
        "evaluation/campaign_action.html",
        {
            "campaign": campaign,
            "action": action,
            "spec": spec,
            "possible": possible,
            "not_possible": spec["not_possible"].format(
                status=campaign.get_status_display().lower(),
                blinded="" if campaign.blinded else " and not blinded",
            ),
            "refusal": refusal,
            "progress": progress,
            "planned": planned,
            "cells": campaign.cells.count(),
            "policies": campaign.policy_versions.count(),
        },
        status=400 if refusal else 200,
    )
