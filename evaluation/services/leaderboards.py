"""Leaderboard snapshots: computing and storing them (`leaderboard_queue` queues the refreshes)."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import InvalidInput
from evaluation import selectors
from evaluation.models import Benchmark, Campaign, LeaderboardSnapshot
from evaluation.services.trials import apply_pending_episode_checks

SNAPSHOTS_KEPT = 20
# A board computed on a read is kept this long in the cache (`_computed`). Its key changes
# with every count and label it shows, so an entry is never stale; this only bounds its life.
COMPUTED_BOARD_CACHE_S = 24 * 3600


# --- Leaderboard snapshots ------------------------------------------------------------------


def refresh_leaderboard(
    *, scope: str, object_id, requested_at: datetime | None = None
) -> LeaderboardSnapshot:
    """Compute and store a leaderboard snapshot. Idempotent and coalescing: when a snapshot
    started after `requested_at` exists, it already covers the change and is returned; when
    the counts are unchanged, the latest snapshot is returned and nothing is stored."""
    if scope == LeaderboardSnapshot.Scope.CAMPAIGN:
        target = Campaign.objects.select_related("benchmark").get(pk=object_id)
        latest = target.snapshots.first()
    elif scope == LeaderboardSnapshot.Scope.BENCHMARK:
        target = Benchmark.objects.get(pk=object_id)
        latest = target.snapshots.first()
    else:
        raise InvalidInput(f"Unknown leaderboard scope '{scope}'.")
    if latest is not None and requested_at is not None and latest.started_at >= requested_at:
        return latest
    started = timezone.now()
    if scope == LeaderboardSnapshot.Scope.CAMPAIGN:
        apply_pending_episode_checks(campaign=target)
        board = selectors.campaign_leaderboard(target)
    else:
        board = selectors.benchmark_leaderboard(target)
    if (
        latest is not None
        and latest.counts_digest == board.counts_digest
        and latest.scoring_version == board.scoring_version
    ):
        return latest
    # One transaction: a job killed here stores the snapshot and trims the old ones, or
    # neither (its re-run then does both).
    with transaction.atomic():
        snapshot = LeaderboardSnapshot.objects.create(
            scope=scope,
            benchmark=target if scope == LeaderboardSnapshot.Scope.BENCHMARK else None,
            campaign=target if scope == LeaderboardSnapshot.Scope.CAMPAIGN else None,
            scoring_version=board.scoring_version,
            data=board.to_dict(),
            counts_digest=board.counts_digest,
            trials_counted=board.trials_counted,
            started_at=started,
            compute_s=board.compute_s,
        )
        stale = LeaderboardSnapshot.objects.filter(
            Q(benchmark=snapshot.benchmark_id) if snapshot.benchmark_id else Q(campaign=target)
        ).values_list("pk", flat=True)[SNAPSHOTS_KEPT:]
        LeaderboardSnapshot.objects.filter(pk__in=list(stale)).delete()
    return snapshot


def leaderboard_data(scope: str, target, *, reader=selectors.EVERYONE) -> dict:
    """The latest leaderboard snapshot's JSON for a benchmark or campaign. A read: it never
    writes. A board with no snapshot yet (its first refresh job has not run) is computed now
    and not stored (`snapshot_id` null); storing snapshots is the refresh job's, queued when
    results change.

    A benchmark's board for a `reader` shows only the campaigns, policies, tasks and
    conditions that reader may see: when the stored board pools a campaign or policy the
    reader may not see, the reader's board is computed from what they may see (not stored),
    and hidden task or condition labels are masked. A computed board is cached under a key
    of what it shows (`_computed`): each is scored once, not on every read."""
    if scope == LeaderboardSnapshot.Scope.BENCHMARK and reader is not selectors.EVERYONE:
        if selectors.leaderboard_hides_something_from(target, reader):
            data = _computed(selectors.prepare_benchmark_leaderboard(target, reader=reader))
        else:
            data = leaderboard_data(scope, target)
        return selectors.mask_hidden_design(data, reader)
    snapshot = target.snapshots.first()
    if snapshot is not None:
        return snapshot.data | {
            "snapshot_id": snapshot.pk,
            "computed_at": snapshot.computed_at.isoformat(),
        }
    if scope == LeaderboardSnapshot.Scope.CAMPAIGN:
        return _computed(selectors.prepare_campaign_leaderboard(target))
    if scope == LeaderboardSnapshot.Scope.BENCHMARK:
        return _computed(selectors.prepare_benchmark_leaderboard(target))
    raise InvalidInput(f"Unknown leaderboard scope '{scope}'.")


def _computed(prepared: selectors.PreparedLeaderboard) -> dict:
    """A board computed on a read, scored at most once per key: the grouped query runs on
    every read (it is what tells a change), the scoring (seconds with bootstraps and
    permutation tests) only when the counts, the design, the labels or the scoring version
    changed (`PreparedLeaderboard.cache_key`). Readers who may see the same things share an
    entry; what differs per reader (masked labels) is applied after."""
    data = cache.get(prepared.cache_key)
    if data is None:
        computed_at = timezone.now()
        data = prepared.score().to_dict() | {
            "snapshot_id": None,
            "computed_at": computed_at.isoformat(),
        }
        cache.set(prepared.cache_key, data, COMPUTED_BOARD_CACHE_S)
    return data
