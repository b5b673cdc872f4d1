"""Throwaway PostgreSQL databases for the benchmarks."""

from urllib.parse import urlsplit, urlunsplit


def recreate_database(url: str, *, drop_only: bool = False) -> None:
    """Drop the database `url` names (ending its sessions) and, unless `drop_only`, create it
    empty. Refuses names that are not plain identifiers."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing an odd database name: {name!r}")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')
