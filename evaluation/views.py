"""Pages of the evaluation app, and the home page (evaluation is the one app that sees the
other two: `evaluation -> teleop -> core`)."""

from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.shortcuts import render

from core import access
from evaluation.models import Campaign
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
