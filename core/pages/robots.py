"""The robot pages: a team's robots and their last heartbeat, embodiments, API keys.

Members see their teams' robots; admins (`rights.Right.MANAGE`) also add robots and
embodiments and issue and revoke keys. A new key's clear value is in the one answer that
issues it, never stored and never shown again. A robot outside the person's teams is a 404.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core import access, rights
from core.errors import Conflict, DomainError
from core.models import Embodiment, Robot, RobotAPIKey
from core.pages.refusals import show_refusal
from core.pages.robot_forms import APIKeyForm, EmbodimentForm, RobotForm
from core.services import embodiments, robots


def _robots(request):
    queryset = Robot.objects.select_related("team", "embodiment")
    return access.in_my_teams(queryset, request.user)


def _may_manage_some_team(user) -> bool:
    return rights.teams_where(user, rights.Right.MANAGE).exists()


def _require_manager(user, team_id) -> None:
    if not rights.may(user, rights.Right.MANAGE, team_id):
        raise PermissionDenied("Only an admin of the robot's team may do this.")


@login_required
def robot_list(request):
    now = timezone.now()
    usable = Q(api_keys__revoked_at=None) & (
        Q(api_keys__expires_at=None) | Q(api_keys__expires_at__gt=now)
    )
    robot_rows = _robots(request).annotate(usable_keys=Count("api_keys", filter=usable))
    embodiment_rows = list(access.visible(Embodiment.objects.select_related("team"), request.user))
    for embodiment in embodiment_rows:
        embodiment.spec_json = json.dumps(embodiment.spec, indent=2)
    return render(
        request,
        "core/robots.html",
        {
            "robots": robot_rows,
            "embodiments": embodiment_rows,
            "may_manage": _may_manage_some_team(request.user),
        },
    )


def _create(request, form, create):
    """On a valid POST, `create(form.cleaned_data)` and return the new row; else None, with
    the service's refusal beside the fields (nothing stored)."""
    if not _may_manage_some_team(request.user):
        raise PermissionDenied("Only a team admin adds robots and embodiments.")
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        return create(form.cleaned_data)
    except Conflict as exc:  # the name is taken
        form.add_error("name", exc.detail)
    except DomainError as exc:
        show_refusal(form, exc)
    return None


@login_required
def robot_new(request):
    form = RobotForm(request.POST or None, user=request.user)
    robot = _create(request, form, lambda data: robots.create_robot(actor=request.user, **data))
    if robot is not None:
        messages.success(request, f"Robot {robot.name} added. Issue it an API key below.")
        return redirect("robots:detail", robot.pk)
    status = 400 if form.errors else 200
    return render(request, "core/robots_new.html", {"form": form}, status=status)


@login_required
def embodiment_new(request):
    form = EmbodimentForm(request.POST or None, user=request.user)
    embodiment = _create(
        request, form, lambda data: embodiments.create_embodiment(actor=request.user, **data)
    )
    if embodiment is not None:
        messages.success(request, f"Embodiment {embodiment.name} added.")
        return redirect("robots:list")
    status = 400 if form.errors else 200
    return render(request, "core/robots_embodiment_new.html", {"form": form}, status=status)


def _robot_page(request, robot, key_form, status=200):
    keys = robot.api_keys.select_related("created_by").order_by("revoked_at", "-created_at")
    return render(
        request,
        "core/robots_detail.html",
        {
            "robot": robot,
            "keys": keys,
            "key_form": key_form,
            "may_manage": rights.may(request.user, rights.Right.MANAGE, robot.team_id),
        },
        status=status,
    )


@login_required
def robot_detail(request, pk):
    robot = get_object_or_404(_robots(request), pk=pk)
    return _robot_page(request, robot, APIKeyForm())


@never_cache
@require_POST
@login_required
def key_new(request, pk):
    """Issue a key and answer with its clear value: this response is the only place it is
    ever shown (not stored, not put in the session, not cached)."""
    robot = get_object_or_404(_robots(request), pk=pk)
    _require_manager(request.user, robot.team_id)
    form = APIKeyForm(request.POST)
    if form.is_valid():
        try:
            key, clear = robots.issue_api_key(actor=request.user, robot=robot, **form.cleaned_data)
        except DomainError as exc:
            show_refusal(form, exc)
        else:
            return render(
                request,
                "core/robots_key_created.html",
                {"robot": robot, "key": key, "clear": clear},
            )
    return _robot_page(request, robot, form, status=400)


@login_required
def key_revoke(request, pk):
    """GET asks to confirm; POST revokes (a robot using the key is refused from then on)."""
    key = get_object_or_404(
        access.in_my_teams(
            RobotAPIKey.objects.select_related("robot__team"),
            request.user,
            team_field="robot__team",
        ),
        pk=pk,
    )
    _require_manager(request.user, key.robot.team_id)
    if request.method == "POST":
        try:
            robots.revoke_api_key(actor=request.user, key=key)
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Key {key.prefix}… revoked.")
        return redirect("robots:detail", key.robot_id)
    return render(request, "core/robots_key_revoke.html", {"key": key, "robot": key.robot})
