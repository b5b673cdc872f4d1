"""Robots at once: 50 simulated robots running the evaluation loop (ask for the next trial,
report its outcome) against gunicorn with DEBUG off, next to a bare Django JSON view served by
the same gunicorn configuration, in one run.

The product: a fresh PostgreSQL database made by this script, one team with 50 robots (one API
key each), a running campaign of 20,000 trials (10 policy versions x 2 tasks x 2 conditions x
500 trials per cell, blocks dealt to the robots), built through the services. A robot's loop is
what a robot does: `POST /api/v1/campaigns/{id}/next-trial`, then
`POST /api/v1/trials/{id}/result` with the outcome, each with its own Idempotency-Key.

The baseline: `bench/bare_json_site.py`, the product's settings and middleware with one view
that parses the JSON body and answers JSON (no authentication, no query), posted to twice per
loop with the same headers and bodies of the same size.

Two phases per site, each after a warm-up:
- saturated: every robot starts its next request as soon as the last one answered; gives
  the throughput (requests/s), whose ratio is the figure (target >= 0.5), and the latency at
  saturation, which is queueing: 50 requests in flight over the throughput (Little's law);
- paced: every robot starts a loop every `--loop-s` seconds (default 5 s: 20 requests/s in
  all, ten times what 50 real robots ask, whose trials take 30 s or more); its p99 is what a
  robot waits for an answer under a load the server can carry (target < 100 ms).
CPU per request is read from /proc: the gunicorn master and workers, and the PostgreSQL
backends serving the bench database, over the measured window.

The load generator runs in a separate process (this script with `--load`), threads with
`requests`; it shares the machine's cores with gunicorn and PostgreSQL, and its own time
(about 1 ms of CPU a request) is in the latencies.

    .venv/bin/python bench/bench_robots.py [--workers 4] [--worker-class sync] [--seconds 15]
        [--loop-s 5]

gunicorn runs as docs/deploy.md starts it (`--workers 4`, sync workers, `--timeout 120`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.databases import recreate_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/pg_bench_robots"
ROBOTS = 50
POLICIES = 10
TASKS = 2
CONDITIONS = 2
TRIALS_PER_CELL = 500  # 10 x 2 x 2 x 500 = 20,000 trials
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- Set-up (in this process, through the services) -----------------------------------------


def _server_env(url: str, settings_module: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-only-not-a-secret",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        # 50 robots at saturation ask far more often than the production rate allows.
        "PG_THROTTLE_ROBOT": "1000000/min",
    }


def _design(url: str) -> tuple[str, list[str]]:
    """The campaign's id and the robots' clear API keys."""
    os.environ.update(_server_env(url, "core.settings"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from tests.production.fleet import build_fleet

    call_command("migrate", verbosity=0)
    fleet = build_fleet(
        ROBOTS,
        tasks=TASKS,
        conditions=CONDITIONS,
        policies=POLICIES,
        trials_per_cell=TRIALS_PER_CELL,
    )
    from django.db import connections

    connections.close_all()
    return fleet["campaign"], fleet["keys"]


# --- The server and what it costs ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(env: dict, port: int, workers: int, worker_class: str, threads: int):
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        "core.wsgi",
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "-k",
        worker_class,
        "--threads",
        str(threads),
        "--backlog",
        "2048",
        "--timeout",
        "120",
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    import requests

    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            return server
        except requests.RequestException:
            if server.poll() is not None:
                raise SystemExit(server.stderr.read().decode()) from None
            time.sleep(0.1)
    raise SystemExit("gunicorn did not answer")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _cpu_s(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process still there."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return found


def _spent_s(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two samples by the processes of the second (a process started in
    between counts from zero; one gone by then is not counted)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _postgres_backends(url: str) -> list[int]:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchall()
    return [row[0] for row in rows]


def _run_load(spec: dict, server, url: str) -> dict:
    """Run the load generator in its own process; sample CPU when its window opens and
    closes (it prints a line at each)."""
    load = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--load", json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    samples = []
    result = None
    for line in load.stdout:
        line = line.strip()
        if line in ("window-open", "window-close"):
            web = _cpu_s([server.pid, *_children(server.pid)])
            samples.append((web, _cpu_s(_postgres_backends(url))))
        elif line.startswith("{"):
            result = json.loads(line)
    load.wait()
    if result is None or len(samples) != 2:
        raise SystemExit("the load generator failed")
    result["web_cpu_s"] = _spent_s(samples[0][0], samples[1][0])
    result["db_cpu_s"] = _spent_s(samples[0][1], samples[1][1]) if samples[1][1] else None
    return result


# --- The load generator (its own process) ---------------------------------------------------


def _load(spec: dict) -> None:
    import requests

    base = spec["base"]
    window = {}  # when the measured window opens and closes (perf_counter), set below
    latencies: list[float] = []  # seconds, of requests finished inside the window
    errors: dict[str, int] = {}
    loops = [0]
    exhausted = [0]
    lock = threading.Lock()
    start_gate = threading.Barrier(len(spec["keys"]) + 1)

    def post(http, path: str, body: dict) -> requests.Response | None:
        started = time.perf_counter()
        try:
            response = http.post(
                base + path,
                json=body,
                headers={"Idempotency-Key": str(uuid.uuid4())},
                timeout=30,
            )
        except requests.RequestException as exc:
            with lock:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            return None
        finished = time.perf_counter()
        with lock:
            if window["open"] <= finished <= window["close"]:
                latencies.append(finished - started)
            if response.status_code >= 300:
                errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
        return response if response.status_code < 300 else None

    def robot(index: int, key: str) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Api-Key {key}"
        period = spec["loop_s"]
        start_gate.wait()
        next_start = time.perf_counter() + (period * index / len(spec["keys"]) if period else 0)
        while time.perf_counter() < window["close"]:
            if period:
                pause = next_start - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                next_start += period
            if spec["site"] == "bare":
                post(http, "/bare/", {"campaign": spec["campaign"]})
                post(http, "/bare/", {"outcome": "success", "valid": True})
            else:
                answer = post(http, f"/api/v1/campaigns/{spec['campaign']}/next-trial", {})
                if answer is None:
                    continue
                trial = answer.json()["trial"]
                if trial is None:
                    with lock:
                        exhausted[0] += 1
                    return
                outcome = "success" if index % 2 else "failure"
                post(http, f"/api/v1/trials/{trial['id']}/result", {"outcome": outcome})
            with lock:
                loops[0] += 1

    threads = [
        threading.Thread(target=robot, args=(i, key), daemon=True)
        for i, key in enumerate(spec["keys"])
    ]
    for thread in threads:
        thread.start()
    window["open"] = time.perf_counter() + spec["warmup_s"]
    window["close"] = window["open"] + spec["seconds"]
    start_gate.wait()
    time.sleep(max(0.0, window["open"] - time.perf_counter()))
    print("window-open", flush=True)
    time.sleep(max(0.0, window["close"] - time.perf_counter()))
    print("window-close", flush=True)
    for thread in threads:
        thread.join(timeout=60)
    print(
        json.dumps(
            {
                "latencies": latencies,
                "seconds": spec["seconds"],
                "errors": errors,
                "loops": loops[0],
                "exhausted": exhausted[0],
            }
        ),
        flush=True,
    )


# --- Report ---------------------------------------------------------------------------------


def _quantile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(result: dict) -> dict:
    n = len(result["latencies"])
    return {
        "n": n,
        "rps": n / result["seconds"],
        "p50": _quantile_ms(result["latencies"], 0.50),
        "p95": _quantile_ms(result["latencies"], 0.95),
        "p99": _quantile_ms(result["latencies"], 0.99),
        "mean": 1000 * statistics.fmean(result["latencies"]),
        "web_cpu_ms": 1000 * result["web_cpu_s"] / n,
        "db_cpu_ms": 1000 * result["db_cpu_s"] / n if result["db_cpu_s"] is not None else None,
        "errors": result["errors"],
    }


def _line(name: str, row: dict, base: dict | None = None) -> str:
    ratio = f"{row['rps'] / base['rps']:5.2f}" if base else " 1.00"
    db = f"{row['db_cpu_ms']:5.2f}" if row["db_cpu_ms"] is not None else "  n/a"
    return (
        f"{name:<22} {row['rps']:7.1f} {ratio}  {row['p50']:6.1f} {row['p95']:6.1f} "
        f"{row['p99']:6.1f}  {row['web_cpu_ms']:5.2f} {db}  {row['errors'] or ''}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup-s", type=float, default=3.0)
    parser.add_argument("--loop-s", type=float, default=5.0, help="a robot's loop, paced phase")
    parser.add_argument("--load", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        _load(json.loads(args.load))
        return

    recreate_database(args.database_url)
    rows: dict[tuple[str, str], dict] = {}
    try:
        campaign, keys = _design(args.database_url)
        for site, settings_module in (("bare", "bench.bare_json_site"), ("api", "core.settings")):
            port = _free_port()
            server = _start_gunicorn(
                _server_env(args.database_url, settings_module),
                port,
                args.workers,
                args.worker_class,
                args.threads,
            )
            try:
                for phase, loop_s in (("saturated", 0.0), ("paced", args.loop_s)):
                    spec = {
                        "base": f"http://127.0.0.1:{port}",
                        "site": site,
                        "campaign": campaign,
                        "keys": keys,
                        "warmup_s": args.warmup_s,
                        "seconds": args.seconds,
                        "loop_s": loop_s,
                    }
                    result = _run_load(spec, server, args.database_url)
                    rows[site, phase] = _summary(result)
                    if result["exhausted"]:
                        print(f"note: {result['exhausted']} robots ran out of trials")
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        recreate_database(args.database_url, drop_only=True)

    print(
        f"{ROBOTS} robots, gunicorn -w {args.workers} -k {args.worker_class} --threads "
        f"{args.threads}, DEBUG off, PostgreSQL; {args.seconds:g} s windows after "
        f"{args.warmup_s:g} s warm-up; the load generator shares the 2 cores"
    )
    print(
        f"{'':<22} {'req/s':>7} {'ratio':>5}  {'p50':>6} {'p95':>6} {'p99':>6}  "
        f"{'web':>5} {'db':>5}  (ms; CPU ms per request)"
    )
    print(_line("bare view, saturated", rows["bare", "saturated"]))
    print(_line("robots, saturated", rows["api", "saturated"], rows["bare", "saturated"]))
    print(_line(f"bare view, {args.loop_s:g} s loops", rows["bare", "paced"]))
    print(_line(f"robots, {args.loop_s:g} s loops", rows["api", "paced"], rows["bare", "paced"]))
    print(
        f"paced: each robot starts a loop every {args.loop_s:g} s "
        f"({2 * ROBOTS / args.loop_s:g} requests/s offered)"
    )
    print("targets: saturated throughput ratio >= 0.5; p99 < 100 ms")


if __name__ == "__main__":
    main()
