"""`manage.py rebuild_recordings`: rebuild every ready episode's `.rrd` (after a Rerun
upgrade, or with --stale-only just those built by another Rerun version)."""

from django.core.management.base import BaseCommand

from proving_ground import replay as rerun_export
from teleop.models import Episode
from teleop.services import recordings


class Command(BaseCommand):
    help = "Rebuild the Rerun recordings of ready episodes."

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-only",
            action="store_true",
            help="only recordings built by another Rerun version",
        )

    def handle(self, *args, stale_only, **options):
        episodes = Episode.objects.filter(state=Episode.State.READY).exclude(file="")
        if stale_only:
            episodes = episodes.exclude(rerun_version=rerun_export.RERUN_VERSION)
        count = 0
        for episode_id in episodes.values_list("pk", flat=True).iterator():
            recordings.build_episode_recording(episode_id=episode_id)
            count += 1
        self.stdout.write(f"Rebuilt {count} recording(s) with Rerun {rerun_export.RERUN_VERSION}.")
