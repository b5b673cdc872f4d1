"""`manage.py worker`: run background jobs, surviving database faults (core/worker.py).

Takes django_tasks_db's `db_worker` options (`--queue-name`, `--interval`, `--batch`,
`--max-tasks`, `--worker-id`, ...). The autoreloader is off unless `--reload` is given or
DEBUG is on; production (DEBUG off) never runs under it. Fault settings come from
`JOB_*` settings (PG_WORKER_* / PG_JOB_* environment variables, docs/jobs.md).
"""

import os

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from core.worker import ResilientWorker


class Command(db_worker.Command):
    help = (
        "Run background jobs; keeps running through database restarts, writes a heartbeat, "
        "and re-queues jobs whose worker died."
    )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options,
    ) -> None:
        self.configure_logging(verbosity)
        queue_names = queue_name.split(",")
        excluded_queue_names = exclude_queues.split(",") if exclude_queues else []
        if excluded_queue_names and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = ResilientWorker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded_queue_names,
            heartbeat_s=settings.JOB_WORKER_HEARTBEAT_S,
            dead_after_s=settings.JOB_WORKER_DEAD_AFTER_S,
            reap_interval_s=settings.JOB_REAP_INTERVAL_S,
            max_attempts=settings.JOB_MAX_ATTEMPTS,
            reconnect_max_s=settings.JOB_RECONNECT_MAX_S,
        )
        if reload and not batch and settings.DEBUG:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()  # only the child runs jobs
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
