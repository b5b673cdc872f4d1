"""`manage.py requeue_stuck_episodes`: kept as an alias of `manage.py requeue_jobs`, which
re-queues every job kind (episodes, recordings, exports, leaderboards; core.jobs)."""

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Alias of `manage.py requeue_jobs` (every job kind, not only episodes)."

    def handle(self, *args, **options):
        call_command("requeue_jobs", stdout=self.stdout, stderr=self.stderr)
