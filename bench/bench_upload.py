"""Upload benchmarks, in the production shape (docs/deploy.md): gunicorn with DEBUG off,
PostgreSQL, a real `manage.py worker`, and files on local disk or on an S3 server.

1. Create + upload + processing (joining the parts, validation in a child, checks, storing
   under the content address) of a 60 s episode (7 joints at 200 Hz, two 640x480 cameras at
   30 fps, JPEG), until the API says `ready`, against a plain copy (+fsync) of the same file
   in the same run. The robot's own SHA-256 of the file is inside the timed upload.
2. Peak RSS of the web server's processes while they receive a 2 GiB upload in 16 MiB chunks.

    .venv/bin/python bench/bench_upload.py [--storage local|s3] [--big-gb 2]

`--storage s3` puts the files on moto's S3 server (in memory, on loopback), started here.
The script makes and drops its own PostgreSQL database on 127.0.0.1:5432. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.databases import recreate_database  # noqa: E402

CHUNK = 16 * 1024 * 1024
PROXY = {"X-Forwarded-Proto": "https"}  # what the TLS proxy in front of gunicorn adds


def _rss_kib(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process, KiB, from /proc."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def _tree_peak(pids: list[int]) -> int:
    return max(_rss_kib(pid)[1] for pid in pids if Path(f"/proc/{pid}").exists())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", choices=["local", "s3"], default="local")
    parser.add_argument("--big-gb", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import requests

    from tests.production.conftest import WorkerProcess, manage, production_environment
    from tests.production.stack import Gunicorn, MotoS3Server

    work = Path(tempfile.mkdtemp(prefix="pg-bench-upload-"))
    name = f"pg_bench_upload_{os.getpid()}"
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    recreate_database(url)
    s3 = MotoS3Server(work / "s3.log").start() if args.storage == "s3" else None
    server = worker = None
    try:
        env = production_environment(
            url,
            work / "var",
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            PG_MAX_EPISODE_BYTES=str(int((args.big_gb + 1) * 1024**3)),
            PG_THROTTLE_ROBOT="100000/min",
            **(s3.environment() if s3 else {}),
        )
        manage(env, "migrate", "--no-input")
        manage(env, "seed_demo")
        key = manage(env, "create_robot_key", "demo-arm-1").strip().splitlines()[-1]
        server = Gunicorn(env, work / "web.log", workers=1).start()
        worker = WorkerProcess(env, "bench-worker", work / "worker.log").start()
        base = f"{server.url}/api/v1"
        http = requests.Session()
        http.headers.update(PROXY | {"Authorization": f"Api-Key {key}"})
        me = http.get(f"{base}/whoami").json()
        task = next(
            t
            for t in http.get(f"{base}/tasks/?team=demo-lab").json()["results"]
            if t["slug"] == "pick-cube"
        )
        session = http.post(
            f"{base}/sessions/",
            json={
                "robot": me["id"],
                "task_version": task["latest_version"]["id"],
                "operator": "OP-DEMO1",
            },
        ).json()

        def upload(path: Path, *, watch: list[int] | None = None) -> tuple[dict, int]:
            size = path.stat().st_size
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                while block := f.read(CHUNK):
                    digest.update(block)
            episode = http.post(
                f"{base}/episodes/",
                json={
                    "id": str(uuid.uuid4()),
                    "session": session["id"],
                    "size_bytes": size,
                    "sha256": digest.hexdigest(),
                },
            ).json()
            upload_url = server.url + "/api/v1/uploads/" + episode["upload_url"].rsplit("/", 1)[1]
            peak = 0
            with open(path, "rb") as f:
                offset = 0
                while offset < size:
                    response = http.patch(
                        upload_url,
                        data=f.read(CHUNK),
                        headers={
                            "Tus-Resumable": "1.0.0",
                            "Upload-Offset": str(offset),
                            "Content-Type": "application/offset+octet-stream",
                        },
                    )
                    response.raise_for_status()
                    offset = int(response.headers["Upload-Offset"])
                    if watch:
                        peak = max(peak, _tree_peak(watch))
            return episode, peak

        def state(episode_id: str) -> str:
            return http.get(f"{base}/episodes/{episode_id}/").json()["state"]

        # 1. A 60 s episode: upload + processing vs a plain copy. (The recording helpers live
        # with the tests, which import Django models: configure Django first.)
        os.environ.update(env | {"DJANGO_SETTINGS_MODULE": "core.settings"})
        import django

        django.setup()
        from core.management.commands.seed_demo import ARM_SPEC
        from tests.teleop.recordings import record_episode

        episode_path = record_episode(work / "episode.h5", spec=ARM_SPEC, seconds=60.0)
        size = episode_path.stat().st_size
        copies, uploads, totals = [], [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            shutil.copyfile(episode_path, work / "copy.h5")
            with open(work / "copy.h5", "rb+") as f:
                os.fsync(f.fileno())
            copies.append(time.perf_counter() - start)
            (work / "copy.h5").unlink()
            start = time.perf_counter()
            episode, _ = upload(episode_path)
            uploads.append(time.perf_counter() - start)
            while (now := state(episode["id"])) in ("uploading", "processing"):
                time.sleep(0.02)
            totals.append(time.perf_counter() - start)
            assert now == "ready", now
        copy_s, upload_s, total_s = (sorted(x)[len(x) // 2] for x in (copies, uploads, totals))
        print(f"storage: {args.storage}; episode: 60 s, {size / 1e6:.1f} MB; median of {args.runs}")
        print(f"  plain copy (+fsync)            {copy_s:7.3f} s  {size / copy_s / 1e6:8.1f} MB/s")
        print(
            f"  hash + create + upload         {upload_s:7.3f} s  {size / upload_s / 1e6:8.1f} MB/s"
            f"   ratio {copy_s / upload_s:.2f}"
        )
        print(
            f"  ... + processing until ready   {total_s:7.3f} s  {size / total_s / 1e6:8.1f} MB/s"
            f"   ratio {copy_s / total_s:.2f} (target >= 0.5)"
        )

        # 2. Server memory while receiving a big upload.
        big = work / "big.bin"
        block = os.urandom(CHUNK)
        with open(big, "wb") as f:
            for _ in range(int(args.big_gb * 1024**3) // CHUNK):
                f.write(block)
        children = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
        ).stdout.split()
        pids = [server.process.pid, *map(int, children)]
        before = _tree_peak(pids)
        start = time.perf_counter()
        _, peak = upload(big, watch=pids)
        elapsed = time.perf_counter() - start
        print(
            f"big upload: {big.stat().st_size / 1024**3:.2f} GiB in {elapsed:.1f} s "
            f"({big.stat().st_size / elapsed / 1e6:.0f} MB/s, hashing included)"
        )
        print(
            f"  web server peak RSS before {before / 1024:.0f} MiB, during {peak / 1024:.0f} MiB "
            "(target < 200 MiB)"
        )
        print(json.dumps({"copy_s": copy_s, "upload_s": upload_s, "total_s": total_s}))
    finally:
        if worker is not None:
            worker.stop()
        if server is not None:
            server.stop()
        if s3 is not None:
            s3.stop()
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        recreate_database(url, drop_only=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
