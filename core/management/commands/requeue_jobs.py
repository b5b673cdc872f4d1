"""`manage.py requeue_jobs`: one pass of what the workers' reaper does, now.

Re-queues every job whose worker died (no heartbeat for `JOB_WORKER_DEAD_AFTER_S`) and every
domain row whose job was lost (episodes processing, recordings missing, exports queued or
running, leaderboards behind their results). Safe to run at any time and alongside workers:
every job is idempotent, and rows are taken under `SKIP LOCKED` locks.
"""

from django.core.management.base import BaseCommand

from core import jobs


class Command(BaseCommand):
    help = "Queue again jobs whose worker died and work whose job was lost (every job kind)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dead-after",
            type=float,
            default=None,
            dest="dead_after_s",
            help="Seconds without a heartbeat after which a worker counts as dead "
            "(default: JOB_WORKER_DEAD_AFTER_S). 0 re-queues every running job of a worker "
            "not seen right now: only when no worker runs.",
        )

    def handle(self, *args, dead_after_s: float | None, **options) -> None:
        counts = jobs.requeue_everything(dead_after_s=dead_after_s)
        self.stdout.write(f"Re-queued: {counts}.")
