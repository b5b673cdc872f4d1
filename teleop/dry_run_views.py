"""The criteria editor's dry run (its page is core's task form): the episodes it may read,
and the checks' verdicts on one of them. JSON for the editor's script; nothing is written."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.views.decorators.http import require_GET, require_POST

from core import rights
from core.errors import InvalidInput
from core.pages.views import read_json_draft
from teleop.dry_run import dry_run, dry_run_episodes


def _require_author(request) -> None:
    if not rights.teams_where(request.user, rights.Right.AUTHOR).exists():
        raise PermissionDenied("Only researchers and admins write success criteria.")


@login_required
@require_GET
def episodes(request):
    """``?team=<id>&embodiment=<id>...``: ``{"episodes": [{"id", "label"}]}``, newest first."""
    _require_author(request)
    found = dry_run_episodes(
        request.user,
        team_id=_uuid_or_none(request.GET.get("team")),
        embodiment_ids=[_uuid_or_none(e) for e in request.GET.getlist("embodiment")],
    )
    return JsonResponse(
        {
            "episodes": [
                {
                    "id": str(e.pk),
                    "label": f"{e.created_at:%Y-%m-%d %H:%M} · {e.robot.name} "
                    f"({e.robot.embodiment.name}) · {e.task_version}"
                    + (f" · {e.duration_s:.1f} s" if e.duration_s else ""),
                }
                for e in found
            ]
        }
    )


@login_required
@require_POST
def run(request):
    """POST ``{"criteria": <draft>, "episode": <id>, "embodiments": [<id>...]}``: answers
    ``{"results": [<check result>...], "success": true | false | null}``, or 400 with
    ``{"problems": [{"field", "message"}]}``."""
    _require_author(request)
    draft, error = read_json_draft(request)
    if error:
        return JsonResponse({"problems": [{"field": "", "message": error}]}, status=400)
    embodiments = draft.get("embodiments") or []
    try:
        outcome = dry_run(
            request.user,
            episode_id=_uuid_or_none(draft.get("episode")),
            criteria=draft.get("criteria"),
            embodiment_ids=[_uuid_or_none(e) for e in embodiments if isinstance(e, str)],
        )
    except InvalidInput as exc:
        problems = [
            {"field": field, "message": str(message)}
            for field, messages in exc.fields.items()
            for message in messages
        ]
        return JsonResponse(
            {"problems": problems or [{"field": "", "message": exc.detail}]}, status=400
        )
    return JsonResponse(
        {"episode": str(outcome.episode.pk), "results": outcome.results, "success": outcome.success}
    )


def _uuid_or_none(value):
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
