"""A dry run of draft success criteria: their automatic checks evaluated on a recorded episode
before the task version is saved (docs/criteria.md, "The editor and the dry run").

The same code path as processing (`teleop.services.processing.process_episode`):
`proving_ground.checks.evaluate_episode_checks` on the stored, validated file, reached through
`teleop.storage` by the episode's own key, never a path from the request. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from core import access
from core.errors import InvalidInput
from core.services.task_versions import validate_criteria
from teleop import storage
from teleop.models import Episode

#: How many recent episodes the editor offers.
EPISODE_CHOICES = 50


def dry_run_episodes(actor, *, team_id=None, embodiment_ids: Iterable = ()) -> QuerySet[Episode]:
    """The episodes a dry run may read for `actor`: ready, not discarded, with a stored file,
    of the actor's teams (`team_id`'s only, when given) and of the given embodiments; newest
    first, at most `EPISODE_CHOICES`."""
    episodes = access.in_my_teams(
        Episode.objects.filter(state=Episode.State.READY, discarded_at=None).exclude(file=""),
        actor,
    )
    if team_id:
        episodes = episodes.filter(team_id=team_id)
    embodiment_ids = [e for e in embodiment_ids if e]
    if embodiment_ids:
        episodes = episodes.filter(robot__embodiment_id__in=embodiment_ids)
    return episodes.select_related("robot__embodiment", "task_version__task").order_by(
        "-created_at"
    )[:EPISODE_CHOICES]


@dataclass(frozen=True)
class DryRun:
    episode: Episode
    results: list[dict[str, Any]]
    success: bool | None  # what the success check decides; None: left to the human


def dry_run(actor, *, episode_id, criteria: Any, embodiment_ids: Iterable = ()) -> DryRun:
    """Evaluate the draft `criteria`'s automatic checks on one episode the actor may read.
    Raises InvalidInput (fields "criteria" or "episode") for invalid criteria, an episode the
    actor cannot read or that has no file, or one whose embodiment is not among
    `embodiment_ids` (the draft's allowed embodiments, when given)."""
    from proving_ground.checks import evaluate_episode_checks
    from proving_ground.criteria.automatic_checks import CheckResult, CheckStatus
    from proving_ground.criteria.parsing import parse_criteria
    from proving_ground.criteria.spec import success_from_checks

    normalized = validate_criteria(criteria)
    episode = (
        access.in_my_teams(Episode.objects.select_related("robot__embodiment"), actor)
        .filter(pk=episode_id, state=Episode.State.READY, discarded_at=None)
        .exclude(file="")
        .first()
    )
    if episode is None:
        raise InvalidInput(
            "No such recorded episode.",
            fields={"episode": ["Choose a ready episode of your team that has its file."]},
        )
    allowed = {str(e) for e in embodiment_ids if e}
    if allowed and str(episode.robot.embodiment_id) not in allowed:
        raise InvalidInput(
            "The episode's embodiment is not allowed.",
            fields={
                "episode": [
                    f"Recorded on a {episode.robot.embodiment.name}, which the draft does not "
                    "allow."
                ]
            },
        )
    with storage.local_episode_file(episode.file) as path:
        results = evaluate_episode_checks(
            path, normalized, nominal_hz=episode.robot.embodiment.control_hz
        )
    success = success_from_checks(
        parse_criteria(normalized),
        [
            CheckResult(r["check_id"], r["type"], CheckStatus(r["status"]), r["value"], "")
            for r in results
        ],
    )
    return DryRun(episode=episode, results=results, success=success)
