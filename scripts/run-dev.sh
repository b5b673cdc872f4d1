#!/usr/bin/env bash
# The embedded platform: the background job worker and the web server, stopped together.
set -euo pipefail
cd "$(dirname "$0")/.."
host=${HOST:-127.0.0.1}
port=${PORT:-8000}
# Jobs a previous run's worker left behind are queued again (the worker's reaper would, too).
.venv/bin/python manage.py requeue_jobs
# The resilient worker (docs/jobs.md); --reload restarts it on code changes (DEBUG only).
.venv/bin/python manage.py worker --interval 0.5 --reload &
worker=$!
# Under the autoreloader the worker runs as a child of $worker: stop both.
trap 'pkill -TERM -P "$worker" 2>/dev/null; kill "$worker" 2>/dev/null || true' EXIT INT TERM
echo "Proving Ground on http://$host:$port/  (admin: /admin/, API docs: /api/docs/); job worker pid $worker"
.venv/bin/python manage.py runserver "$host:$port"
