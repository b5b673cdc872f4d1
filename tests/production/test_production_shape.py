"""The platform in the shape users deploy (docs/deploy.md), under faults.

A private PostgreSQL cluster, a local S3 server, two gunicorn instances and two job workers,
all started from the repository's own settings with DEBUG off. Robots upload episodes whose
chunks alternate between the two instances; 50 robots run campaign trials (next trial,
report) while the test kills a worker mid-job with SIGKILL and stops PostgreSQL for 10 s.
Afterwards every episode is ready, every acknowledged result is stored exactly once, no
answer was a 5xx other than 503 + Retry-After (only those while the database was away),
both workers are alive (the killed one replaced, its job run again), and every page
answers 200.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from tests.production.conftest import WorkerProcess, manage, production_environment, wait_for
from tests.production.stack import Gunicorn, MotoS3Server
from tests.teleop.recordings import record_episode

pytestmark = [pytest.mark.slow, pytest.mark.postgres_only, pytest.mark.production]

ROBOTS = 50
# Between trials a robot resets its scene; real ones take seconds. A short pause keeps 50
# robots concurrent without turning the test into a CPU benchmark of the 2 cores.
ROBOT_PAUSE_S = 0.3
OUTAGE_S = 10
# The TLS proxy in front of gunicorn says the request came over HTTPS (SECURE_PROXY_SSL_HEADER).
PROXY = {"X-Forwarded-Proto": "https"}
FAULT_SETTINGS = {
    "PG_WORKER_HEARTBEAT_S": "1",
    "PG_WORKER_DEAD_AFTER_S": "8",
    "PG_JOB_REAP_INTERVAL_S": "2",
    "PG_WORKER_RECONNECT_MAX_S": "2",
}


@dataclass
class Answer:
    started: float
    ended: float
    method: str
    path: str
    status: int | None  # None: no HTTP answer (connection error)
    retry_after: str | None = None
    error: str = ""


@dataclass
class Ledger:
    """Every answer the robots got, and the trials whose result the server acknowledged."""

    answers: list[Answer] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    refused: list[tuple[str, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def _call(http, ledger, method, url, **kwargs) -> requests.Response | None:
    started = time.monotonic()
    try:
        response = http.request(method, url, timeout=60, **kwargs)
    except requests.RequestException as exc:
        ledger.add(
            Answer(started, time.monotonic(), method, urlsplit(url).path, None, None, str(exc))
        )
        return None
    ledger.add(
        Answer(
            started,
            time.monotonic(),
            method,
            urlsplit(url).path,
            response.status_code,
            response.headers.get("Retry-After"),
            response.text[:300] if response.status_code >= 500 else "",
        )
    )
    return response


def _backoff(response) -> None:
    wait = 0.5
    if response is not None and response.headers.get("Retry-After", "").isdigit():
        wait = min(float(response.headers["Retry-After"]), 1.0)
    time.sleep(wait)


def _robot_loop(index, key, servers, campaign, ledger, stop: threading.Event) -> None:
    """One robot: ask for its next trial, report it, over and over, each call to the next
    server; retries what did not get an answer, with the same Idempotency-Key."""
    http = requests.Session()
    http.headers.update(PROXY | {"Authorization": f"Api-Key {key}"})
    turn = index
    while not stop.is_set():
        turn += 1
        server = servers[turn % len(servers)]
        response = _call(http, ledger, "POST", f"{server}/api/v1/campaigns/{campaign}/next-trial")
        if response is None or response.status_code != 200:
            _backoff(response)
            continue
        trial = response.json()["trial"]
        if trial is None:
            return
        report_path = urlsplit(trial["report_url"]).path
        body = {"outcome": "success" if turn % 3 else "failure"}
        headers = {"Idempotency-Key": f"result-{trial['id']}"}
        while True:  # the result must land, even across the outage
            turn += 1
            server = servers[turn % len(servers)]
            response = _call(http, ledger, "POST", server + report_path, json=body, headers=headers)
            if response is not None and response.status_code in (200, 201):
                with ledger.lock:
                    ledger.acknowledged.add(trial["id"])
                time.sleep(ROBOT_PAUSE_S)  # resetting the scene, running the policy
                break
            if (
                response is not None
                and response.status_code < 500
                and (
                    response.status_code != 409
                    or response.json().get("error") != "idempotency_key_in_flight"
                )
            ):
                with ledger.lock:  # a refusal: the assertions below allow none
                    ledger.refused.append((trial["id"], response.status_code, response.text))
                break
            _backoff(response)


def _upload_alternating(servers, key, session_id, path, ledger) -> str:
    """Create the episode, then send its chunks to the two servers in turn (tus)."""
    data = path.read_bytes()
    http = requests.Session()
    http.headers.update(PROXY | {"Authorization": f"Api-Key {key}"})
    episode_id = str(uuid.uuid4())
    response = _call(
        http,
        ledger,
        "POST",
        f"{servers[0]}/api/v1/episodes/",
        json={
            "id": episode_id,
            "session": session_id,
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        },
    )
    assert response is not None and response.status_code == 201, response and response.text
    upload_path = urlsplit(response.json()["upload_url"]).path
    offset, turn, step = 0, 0, 96 * 1024
    while offset < len(data):
        chunk = data[offset : offset + step]
        server = servers[turn % len(servers)]
        turn += 1
        answer = _call(
            http,
            ledger,
            "PATCH",
            server + upload_path,
            data=chunk,
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": "sha256 "
                + base64.b64encode(hashlib.sha256(chunk).digest()).decode(),
            },
        )
        assert answer is not None and answer.status_code == 204, answer and answer.text
        offset = int(answer.headers["Upload-Offset"])
    return episode_id


def _signed_in(server: str) -> requests.Session:
    """A person signed in through the login form (as a browser behind the proxy would)."""
    http = requests.Session()
    http.headers.update(PROXY | {"Origin": server.replace("http://", "https://")})
    page = http.get(f"{server}/accounts/login/", timeout=30)
    assert page.status_code == 200, page.text[:500]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    # The cookies are Secure (DEBUG off); the proxy would carry them over HTTPS.
    http.cookies.update({c.name: c.value for c in page.cookies})
    answer = http.post(
        f"{server}/accounts/login/",
        data={"username": "admin", "password": "proving-ground", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{server.replace('http://', 'https://')}/accounts/login/"},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:1000]
    http.cookies.update({c.name: c.value for c in answer.cookies})
    return http


def _db_rows(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def test_the_production_shape_survives_a_database_restart_and_a_killed_worker(
    private_postgres, tmp_path
):
    database = private_postgres.create_database("proving_ground_shape")
    s3 = MotoS3Server(tmp_path / "s3.log").start()
    servers: list[Gunicorn] = []
    workers: list[WorkerProcess] = []

    def start_worker(name: str) -> WorkerProcess:
        worker = WorkerProcess(env, name, tmp_path / f"{name}.log").start()
        workers.append(worker)
        return worker

    try:
        env = production_environment(
            database,
            tmp_path / "var",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            PG_THROTTLE_ROBOT="100000/min",
            PG_THROTTLE_ANON="100000/min",
            **s3.environment(),
            **FAULT_SETTINGS,
        )
        manage(env, "migrate", "--no-input")
        manage(env, "createcachetable")
        manage(env, "collectstatic", "--no-input", "--verbosity", "0")
        fleet = json.loads(
            manage(env, "shell", "-c", f"from tests.production.fleet import seed; seed({ROBOTS})")
            .strip()
            .splitlines()[-1]
        )
        servers = [Gunicorn(env, tmp_path / f"web-{n}.log").start() for n in "ab"]
        urls = [server.url for server in servers]
        first_workers = [start_worker(f"worker-{n}") for n in "ab"]
        ledger = Ledger()

        # 1. Robots upload episodes, each chunk to the other instance.
        episodes = []
        for index, session in enumerate(fleet["sessions"]):
            path = record_episode(
                tmp_path / f"episode-{index}.h5", seconds=1.5, robot=fleet["robots"][index]
            )
            episodes.append(_upload_alternating(urls, fleet["keys"][index], session, path, ledger))

        # 2. Fifty robots run trials for the rest of the test.
        stop = threading.Event()
        robots = [
            threading.Thread(
                target=_robot_loop,
                args=(n, fleet["keys"][n], urls, fleet["campaign"], ledger, stop),
                daemon=True,
            )
            for n in range(ROBOTS)
        ]
        for robot in robots:
            robot.start()
        wait_for(lambda: len(ledger.acknowledged) >= 50, timeout_s=120, what="50 results")

        # 3. A worker is killed mid-job; the test starts another in its place.
        marker = tmp_path / "markers"
        marker.mkdir()
        job_id = (
            manage(
                env,
                "shell",
                "-c",
                "from tests.production.tasks import hold_job\n"
                # Long enough to be killed mid-run on a loaded machine.
                f"print(hold_job.enqueue({str(marker)!r}, 'held', 15.0, False).id)",
            )
            .strip()
            .splitlines()[-1]
        )
        started = marker / "held.started"
        holder = int(
            wait_for(
                lambda: started.exists() and started.read_text().split(),
                timeout_s=60,
                what="the held job to start",
            )[0]
        )
        victim = next(w for w in first_workers if w.pid == holder)
        victim.kill9()
        start_worker("worker-c")  # the killed one's replacement

        # 4. PostgreSQL goes away for OUTAGE_S seconds, then comes back.
        private_postgres.stop()
        outage_began = time.monotonic()
        # The proxy's probes, over plain HTTP: alive, but not ready.
        assert requests.get(f"{urls[0]}/healthz/live", timeout=30).status_code == 200
        probe = requests.get(f"{urls[1]}/healthz/ready", timeout=30)
        assert probe.status_code == 503 and probe.headers["Retry-After"]
        time.sleep(OUTAGE_S)  # the fault's length, not a wait for a condition
        outage_ended = time.monotonic()
        private_postgres.start()
        wait_for(
            lambda: requests.get(f"{urls[0]}/healthz/ready", timeout=30).status_code == 200,
            timeout_s=60,
            what="the web process to be ready again",
        )
        before = len(ledger.acknowledged)
        wait_for(
            lambda: len(ledger.acknowledged) >= before + 100,
            timeout_s=180,
            what="100 more results after the restart",
        )
        stop.set()
        for robot in robots:
            robot.join(timeout=120)

        # Every episode ready; the killed worker's job ran again to the end.
        def all_ready():
            rows = _db_rows(
                database, "SELECT state FROM teleop_episode WHERE id = ANY(%s)", (episodes,)
            )
            return len(rows) == len(episodes) and {r[0] for r in rows} == {"ready"}

        wait_for(all_ready, timeout_s=240, what="every uploaded episode to be ready")
        wait_for(
            lambda: (marker / "held.done").exists(),
            timeout_s=180,
            what="the killed worker's job to be run again",
        )
        status = _db_rows(
            database,
            "SELECT status FROM django_tasks_database_dbtaskresult WHERE id = %s",
            (job_id,),
        )[0][0]
        assert status == "SUCCESSFUL"
        assert len(started.read_text().split()) >= 2  # claimed again after the kill
        living = [w for w in workers if w is not victim]
        assert all(w.alive() for w in living), [w.output()[-3000:] for w in living]

        # No 5xx but 503 + Retry-After; during the outage, only those.
        failures = [a for a in ledger.answers if a.status is None]
        assert failures == [], failures[:5]
        server_errors = [
            a for a in ledger.answers if a.status >= 500 and not (a.status == 503 and a.retry_after)
        ]
        assert server_errors == [], server_errors[:5]
        during = [
            a for a in ledger.answers if a.started >= outage_began and a.ended <= outage_ended
        ]
        assert during, "no request was sent while the database was away"
        assert {(a.status, bool(a.retry_after)) for a in during} == {(503, True)}

        # Every result acknowledged (a retry whose first attempt was stored but not answered
        # gets that report back), stored exactly once; nothing reported twice.
        assert ledger.refused == [], ledger.refused[:5]
        counts = dict(
            _db_rows(
                database,
                "SELECT r.trial_id::text, count(*) FROM evaluation_trialreport r"
                " JOIN evaluation_trial t ON t.id = r.trial_id WHERE t.campaign_id = %s"
                " GROUP BY r.trial_id",
                (fleet["campaign"],),
            )
        )
        assert all(counts.get(trial) == 1 for trial in ledger.acknowledged)
        assert set(counts) == ledger.acknowledged
        assert max(counts.values()) == 1
        # The files are in the object store, not on a web server's disk.
        assert s3.keys("episodes/") and not s3.keys("uploads/")

        # Every page answers 200 with DEBUG off, on either instance.
        campaign = fleet["campaign"]
        benchmark = _db_rows(
            database, "SELECT id::text FROM evaluation_benchmark WHERE visibility = 'public'"
        )[0][0]
        pages = [
            "/",
            "/teleop/",
            f"/teleop/sessions/{fleet['sessions'][0]}/",
            "/episodes/",
            f"/episodes/{episodes[0]}/",
            f"/episodes/{episodes[0]}/viewer",
            "/datasets/",
            "/campaigns/",
            f"/campaigns/{campaign}/",
            "/leaderboards/",
            f"/leaderboards/{benchmark}/",
            f"/leaderboards/{benchmark}/compare",
            "/admin/",
            "/admin/teleop/episode/",
            "/api/docs/",
        ]
        for url in urls:
            http = _signed_in(url)
            for page in pages:
                response = http.get(url + page, timeout=60)
                assert response.status_code == 200, (url + page, response.text[:500])
    finally:
        for server in servers:
            server.stop()
        for worker in workers:
            worker.stop()
        s3.stop()
