"""`manage.py refresh_leaderboards`: recompute leaderboard snapshots now, in this process.

For after a deployment that changed scoring code, or to fill snapshots without a worker.
Idempotent: a leaderboard whose counts have not changed keeps its latest snapshot.
"""

from django.core.management.base import BaseCommand

from evaluation.models import Benchmark, Campaign, LeaderboardSnapshot
from evaluation.services import leaderboards


class Command(BaseCommand):
    help = "Recompute leaderboard snapshots of benchmarks and running or done campaigns."

    def add_arguments(self, parser):
        parser.add_argument("--benchmark", action="append", default=[], help="Only these ids.")
        parser.add_argument("--campaign", action="append", default=[], help="Only these ids.")

    def handle(self, *args, benchmark, campaign, **options):
        everything = not benchmark and not campaign
        campaigns = Campaign.objects.exclude(status=Campaign.Status.DRAFT)
        benchmarks = Benchmark.objects.exclude(published_at=None)
        targets = [
            (LeaderboardSnapshot.Scope.CAMPAIGN, pk)
            for pk in (campaigns if everything else campaigns.filter(pk__in=campaign)).values_list(
                "pk", flat=True
            )
        ] + [
            (LeaderboardSnapshot.Scope.BENCHMARK, pk)
            for pk in (
                benchmarks if everything else benchmarks.filter(pk__in=benchmark)
            ).values_list("pk", flat=True)
        ]
        for scope, pk in targets:
            snapshot = leaderboards.refresh_leaderboard(scope=scope, object_id=pk)
            self.stdout.write(
                f"{scope} {pk}: snapshot {snapshot.pk}, {snapshot.trials_counted} trials"
            )
        self.stdout.write(f"Refreshed {len(targets)} leaderboard(s).")
