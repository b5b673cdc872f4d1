"""Test-only jobs whose progress a test can watch from outside the worker: each attempt
appends a line (`<pid>`) to `<name>.started` in `marker_dir`, and a finished run appends one
to `<name>.done`."""

import os
import time
from pathlib import Path

from django.db import connection
from django_tasks import task


@task()
def hold_job(marker_dir: str, name: str, seconds: float, touch_database: bool) -> str:
    """Work for `seconds`; with `touch_database`, query the database every 0.2 s (so a
    database outage fails the job mid-run, as it fails real jobs)."""
    markers = Path(marker_dir)
    with open(markers / f"{name}.started", "a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if touch_database:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        time.sleep(0.2)
    with open(markers / f"{name}.done", "a") as f:
        f.write(f"{os.getpid()}\n")
    return name
