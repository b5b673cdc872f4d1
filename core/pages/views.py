"""Authoring pages: tasks with their versions and success criteria, and conditions.

Thin, as every page: forms shape the input, the services in `core.services` decide and write
(and their refusals are shown beside the fields, nothing stored), `core.access.visible` says
what a person sees and `core.rights` what a page offers. Another team's private task or
condition is a 404; one the person sees but may not author is a 403.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core import access, rights
from core.criteria_schema import check_kinds
from core.errors import Conflict, DomainError, InvalidInput
from core.models import Condition, Task, TaskVersion
from core.pages.forms import ConditionForm, TaskForm, TaskVersionForm
from core.pages.refusals import show_refusal
from core.pages.version_diff import version_diff
from core.services import conditions as condition_services
from core.services import task_versions

AUTHOR = rights.Right.AUTHOR

#: The largest criteria draft the validate endpoint reads (a valid spec is far smaller).
MAX_DRAFT_BYTES = 256 * 1024


def _tasks(request):
    versions = Prefetch(
        "versions",
        queryset=TaskVersion.objects.order_by("-number").prefetch_related("allowed_embodiments"),
    )
    return (
        access.visible(Task.objects.select_related("team"), request.user)
        .prefetch_related(versions)
        .order_by("team__name", "slug")
    )


def _author_teams(request):
    return rights.teams_where(request.user, AUTHOR)


def _editor_context() -> dict:
    return {"check_kinds": check_kinds()}


# --- Tasks ------------------------------------------------------------------------------------


@login_required
def task_list(request):
    return render(
        request,
        "core/task_list.html",
        {"tasks": _tasks(request), "may_author": _author_teams(request).exists()},
    )


@login_required
def task_new(request):
    if not _author_teams(request).exists():
        raise PermissionDenied("Only researchers and admins write tasks.")
    form = TaskForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            task = task_versions.create_task(
                actor=request.user,
                team=data["team"],
                slug=data["slug"],
                name=data["name"],
                visibility=data["visibility"],
                **form.version_fields(),
            )
        except Conflict as exc:
            form.add_error("slug", exc.detail)
        except DomainError as exc:
            show_refusal(form, exc)
        else:
            messages.success(request, f"Task '{task.slug}' created with version 1.")
            return redirect("task", task.pk)
    return render(
        request,
        "core/task_form.html",
        {"form": form, "task": None, **_editor_context()},
        status=400 if form.errors else 200,
    )


@login_required
def task_detail(request, pk):
    task = get_object_or_404(_tasks(request), pk=pk)
    versions = list(task.versions.all())  # newest first
    by_number = {v.number: v for v in versions}

    def chosen(name, default):
        try:
            return by_number.get(int(request.GET.get(name, "")), default)
        except ValueError:
            return default

    newest = versions[0] if versions else None
    older = chosen("a", versions[1] if len(versions) > 1 else newest)
    newer = chosen("b", newest)
    return render(
        request,
        "core/task_detail.html",
        {
            "task": task,
            "versions": versions,
            "older": older,
            "newer": newer,
            "diff": version_diff(older, newer) if older and newer and older != newer else None,
            "may_author": rights.may(request.user, AUTHOR, task.team_id),
            # Any author may build protocols and benchmarks on a task they see.
            "may_build_on": _author_teams(request).exists(),
        },
    )


@login_required
def task_edit(request, pk):
    """A new version of the task, from a form prefilled with the latest. (The service may
    also edit a version nothing references in place; a new version is always right, and keeps
    what earlier readers saw.)"""
    task = get_object_or_404(_tasks(request), pk=pk)
    if not rights.may(request.user, AUTHOR, task.team_id):
        raise PermissionDenied("Only researchers and admins of the task's team edit it.")
    latest = task.versions.order_by("-number").first()
    initial = TaskVersionForm.initial_from(latest) if latest else {}
    form = TaskVersionForm(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            version = task_versions.create_task_version(
                actor=request.user, task=task, **form.version_fields()
            )
        except DomainError as exc:
            show_refusal(form, exc)
        else:
            if latest is not None and version.pk == latest.pk:
                messages.info(request, "Nothing changed: version kept as it was.")
            else:
                messages.success(request, f"Version {version.number} saved.")
            return redirect("task", task.pk)
    return render(
        request,
        "core/task_form.html",
        {"form": form, "task": task, "latest": latest, **_editor_context()},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def criteria_validate(request):
    """The criteria editor's live validation: POST ``{"criteria": <draft>}``; answers
    ``{"valid": true, "criteria": <normalized>}`` or ``{"valid": false, "problems": [{"path",
    "message"}]}``, the service's own messages (`task_versions.validate_criteria`)."""
    if not _author_teams(request).exists():
        raise PermissionDenied("Only researchers and admins write success criteria.")
    draft, error = read_json_draft(request)
    if error:
        return JsonResponse({"valid": False, "problems": [{"path": "", "message": error}]})
    try:
        normalized = task_versions.validate_criteria(draft.get("criteria"))
    except InvalidInput as exc:
        return JsonResponse(
            {"valid": False, "problems": [_problem(m) for m in exc.fields.get("criteria", [])]}
        )
    return JsonResponse({"valid": True, "criteria": normalized, "problems": []})


def read_json_draft(request) -> tuple[dict, str | None]:
    """The JSON object a page script POSTed, or an error message."""
    if len(request.body) > MAX_DRAFT_BYTES:
        return {}, f"The draft is larger than {MAX_DRAFT_BYTES // 1024} KB."
    try:
        draft = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}, "The draft is not JSON."
    if not isinstance(draft, dict):
        return {}, "The draft must be a JSON object."
    return draft, None


def _problem(message: str) -> dict:
    """ "/stages/0/weight: 2 is above ..." -> {"path": "/stages/0/weight", "message": ...}."""
    path, sep, rest = message.partition(": ")
    if sep and path.startswith("/"):
        return {"path": "" if path == "/" else path, "message": rest}
    return {"path": "", "message": message}


# --- Conditions -------------------------------------------------------------------------------


@login_required
def condition_list(request):
    author_teams = _author_teams(request)
    form = None
    if author_teams.exists():
        form = ConditionForm(request.POST or None, user=request.user)
    elif request.method == "POST":
        raise PermissionDenied("Only researchers and admins write conditions.")
    if request.method == "POST" and form.is_valid():
        try:
            condition = condition_services.create_condition(actor=request.user, **form.cleaned_data)
        except Conflict as exc:
            form.add_error("level", exc.detail)
        except DomainError as exc:
            show_refusal(form, exc)
        else:
            messages.success(request, f"Condition '{condition}' created.")
            return redirect("conditions")
    conditions = access.visible(Condition.objects.select_related("team"), request.user)
    authored = set(author_teams.values_list("pk", flat=True))
    rows = [
        (c, c.team_id in authored) for c in conditions.order_by("factor", "level", "team__name")
    ]
    return render(
        request,
        "core/condition_list.html",
        {"form": form, "rows": rows},
        status=400 if form is not None and form.errors else 200,
    )


@login_required
@require_POST
def condition_delete(request, pk):
    condition = get_object_or_404(access.visible(Condition.objects.all(), request.user), pk=pk)
    if not rights.may(request.user, AUTHOR, condition.team_id):
        raise PermissionDenied("Only researchers and admins of its team delete a condition.")
    try:
        condition_services.delete_condition(actor=request.user, condition=condition)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Condition '{condition}' deleted.")
    return redirect("conditions")
