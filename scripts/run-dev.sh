#!/usr/bin/env bash
# The embedded platform: the background job worker and the web server, stopped together.
set -euo pipefail
cd "$(dirname "$0")/.."
host=${HOST:-127.0.0.1}
port=${PORT:-8000}
.venv/bin/python manage.py requeue_stuck_episodes
.venv/bin/python manage.py db_worker --interval 0.5 &
worker=$!
trap 'kill "$worker" 2>/dev/null || true' EXIT INT TERM
echo "Proving Ground on http://$host:$port/  (admin: /admin/, API docs: /api/docs/); job worker pid $worker"
.venv/bin/python manage.py runserver "$host:$port"
