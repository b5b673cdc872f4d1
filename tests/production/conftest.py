"""Production-shape fixtures: a private PostgreSQL cluster and real worker processes.

`PrivatePostgres` is a cluster of its own (`pg_createcluster` on a spare loopback port), so a
test may stop and start PostgreSQL without touching the shared cluster on 5432; it is dropped
at the end of the session. `WorkerProcess` runs `manage.py worker` as a subprocess from the
repository's own settings with DEBUG off. Both are plain classes, for any test that needs the
production shape; the fixtures below build them once per session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
PG_VERSION = "15"


def spare_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], *, timeout_s: float, what: str, every_s=0.2):
    """Poll `condition` until it returns something truthy (returned), or fail after
    `timeout_s` naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(every_s)


class PrivatePostgres:
    """A PostgreSQL cluster owned by one test session: `start()`, `stop()`, `url(db)`,
    `drop()`. Trust authentication; it listens on localhost only."""

    def __init__(self, name: str, port: int):
        self.name = name
        self.port = port

    @classmethod
    def create(cls, prefix: str = "pgtest") -> PrivatePostgres:
        name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
        port = spare_port()
        subprocess.run(
            [
                "pg_createcluster",
                PG_VERSION,
                name,
                "-p",
                str(port),
                "--start-conf=manual",
                "-o",
                "fsync=off",  # a test cluster: speed over durability across power loss
                "--",
                "--auth=trust",
            ],
            check=True,
            capture_output=True,
        )
        cluster = cls(name, port)
        try:
            cluster.start()
        except BaseException:
            cluster.drop()
            raise
        return cluster

    def _ctl(self, action: str, *extra: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", PG_VERSION, self.name, action, *extra],
            check=True,
            capture_output=True,
        )

    def start(self, *, timeout_s: float = 60) -> None:
        self._ctl("start")
        wait_for(
            self.is_ready, timeout_s=timeout_s, what=f"cluster {self.name} to accept connections"
        )

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as in a restart or failover."""
        self._ctl("stop", "-m", "fast")

    def is_ready(self) -> bool:
        try:
            with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def url(self, database: str = "proving_ground") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, database: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def drop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", "--stop", PG_VERSION, self.name], check=False, capture_output=True
        )


def production_environment(database_url: str, var_dir: Path, **overrides: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, a secret key, this database."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PG_", "DATABASE_URL", "PYTEST_"))
    }
    env.update(
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
        DATABASE_URL=database_url,
        PG_VAR_DIR=str(var_dir),
        PG_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout_s: float = 300) -> str:
    """Run `manage.py <args>` with `env`; its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if done.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class WorkerProcess:
    """`manage.py worker` in a subprocess, its output in `log_path`."""

    def __init__(self, env: dict[str, str], worker_id: str, log_path: Path, *args: str):
        self.env = env
        self.worker_id = worker_id
        self.log_path = log_path
        self.args = args
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it open)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "worker",
                "--worker-id",
                self.worker_id,
                "--interval",
                "0.2",
                "--no-startup-delay",
                *self.args,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, *, timeout_s: float = 60) -> int | None:
        """SIGTERM, then SIGKILL if it has not ended within `timeout_s`; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=30)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL 15 cluster for the session (skipped where none can be made)."""
    if not shutil.which("pg_createcluster") or os.geteuid() != 0:
        pytest.skip("needs pg_createcluster run as root (Debian's postgresql-common)")
    cluster = PrivatePostgres.create()
    try:
        yield cluster
    finally:
        cluster.drop()


@pytest.fixture(scope="session")
def production_database(private_postgres, tmp_path_factory) -> str:
    """A migrated database on the private cluster; its URL."""
    url = private_postgres.create_database("proving_ground")
    env = production_environment(url, tmp_path_factory.mktemp("var"))
    manage(env, "migrate", "--no-input")
    return url


@pytest.fixture
def start_worker(production_database, tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    """`start_worker(name, **env)` starts `manage.py worker` on the private cluster with
    DEBUG off (extra environment variables as keyword arguments); every worker is stopped
    at the end of the test, and its output printed when the test failed."""
    workers: list[WorkerProcess] = []

    def start(name: str, **overrides: str) -> WorkerProcess:
        env = production_environment(production_database, tmp_path / "var", **overrides)
        worker = WorkerProcess(env, f"{name}-{secrets.token_hex(4)}", tmp_path / f"{name}.log")
        workers.append(worker.start())
        return worker

    yield start
    for worker in workers:
        worker.stop()
        sys.stdout.write(f"\n--- {worker.worker_id} output ---\n{worker.output()[-6000:]}\n")
