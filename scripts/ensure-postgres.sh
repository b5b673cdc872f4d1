#!/usr/bin/env bash
# Make sure the local PostgreSQL answers on 127.0.0.1:5432, starting the cluster if it is down,
# and that the database named by the first argument (if any) exists.
set -euo pipefail
host=${PGHOST:-127.0.0.1}
port=${PGPORT:-5432}
database=${1:-}

create_database() {
  [ -n "$database" ] || return 0
  if ! psql -h "$host" -p "$port" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$database'" | grep -q 1; then
    createdb -h "$host" -p "$port" -U postgres "$database"
  fi
}

if pg_isready -q -h "$host" -p "$port"; then create_database; exit 0; fi
if [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "PostgreSQL is down on $host:$port; starting cluster $version/main" >&2
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do
  if pg_isready -q -h "$host" -p "$port"; then create_database; exit 0; fi
  sleep 1
done
echo "PostgreSQL did not come up on $host:$port" >&2
exit 1
