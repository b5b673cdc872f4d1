"""`manage.py requeue_stuck_episodes`: queue again episodes whose processing worker died."""

from django.core.management.base import BaseCommand

from teleop import services


class Command(BaseCommand):
    help = "Queue processing again for episodes stuck in 'processing' (idempotent jobs)."

    def handle(self, *args, **options):
        count = services.requeue_stuck_episodes()
        self.stdout.write(f"Re-queued {count} stuck episode(s).")
