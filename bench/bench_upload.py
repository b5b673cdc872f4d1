"""Upload benchmarks, against a real gunicorn server on loopback.

1. Upload plus validation throughput of a 60 s episode (7 joints at 200 Hz, two 640x480
   cameras at 30 fps, JPEG) against a plain copy of the same file, in the same run.
2. Peak RSS of the server process while it receives a 2 GB upload in 16 MiB chunks.

    .venv/bin/python bench/bench_upload.py [--big-gb 2]

The server runs on a throwaway SQLite database and files under a temporary directory; the
script starts and stops it. Loopback only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CHUNK = 16 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    parser.add_argument("--big-gb", type=float, default=2.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pg-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work}/db.sqlite3",
        "PG_VAR_DIR": str(work),
        "DJANGO_DEBUG": "true",
        "PG_MAX_EPISODE_BYTES": str(int((args.big_gb + 1) * 1024**3)),
        "PG_THROTTLE_ROBOT": "100000/min",
    }
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [python, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    key = subprocess.run(
        [python, "manage.py", "create_robot_key", "demo-arm-1"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    port = _free_port()
    server = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            "core.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            "1",
            "--timeout",
            "600",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import requests

        base = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(100):
            try:
                requests.get(f"{base}/version", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        http = requests.Session()
        http.headers["Authorization"] = f"Api-Key {key}"
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

        def upload(path: Path, *, sha256: str | None = None, watch: list[int] | None = None):
            size = path.stat().st_size
            digest = sha256 or hashlib.sha256(path.read_bytes()).hexdigest()
            episode = http.post(
                f"{base}/episodes/",
                json={
                    "id": str(uuid.uuid4()),
                    "session": session["id"],
                    "size_bytes": size,
                    "sha256": digest,
                },
            ).json()
            peak = 0
            with open(path, "rb") as f:
                offset = 0
                while offset < size:
                    chunk = f.read(CHUNK)
                    response = http.patch(
                        episode["upload_url"],
                        data=chunk,
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

        # 1. A 60 s episode: upload + validation vs a plain copy. (The recording helpers
        # live with the tests, which import Django models: configure it first.)
        os.environ.update(env | {"DJANGO_SETTINGS_MODULE": "core.settings"})
        import django

        django.setup()
        from core.management.commands.seed_demo import ARM_SPEC
        from teleop import hdf5
        from tests.teleop.recordings import record_episode

        episode_path = record_episode(work / "episode.h5", spec=ARM_SPEC, seconds=60.0)
        size = episode_path.stat().st_size
        copies, uploads = [], []
        for _ in range(3):
            start = time.perf_counter()
            shutil.copyfile(episode_path, work / "copy.h5")
            with open(work / "copy.h5", "rb+") as f:
                os.fsync(f.fileno())
            copies.append(time.perf_counter() - start)
            (work / "copy.h5").unlink()
            start = time.perf_counter()
            digest = hashlib.sha256(episode_path.read_bytes()).hexdigest()
            episode, _ = upload(episode_path, sha256=digest)
            while (state := http.get(f"{base}/episodes/{episode['id']}/").json()["state"]) in (
                "uploading",
                "processing",
            ):
                # No worker runs here: validate the way the job does, in a child process.
                report = hdf5.validate_isolated(episode_path, ARM_SPEC)
                assert report.ok, report.problems
                break
            uploads.append(time.perf_counter() - start)
            assert state in ("processing", "uploading", "ready"), state
        copy_s, upload_s = sorted(copies)[1], sorted(uploads)[1]
        print(f"episode: 60 s, {size / 1e6:.1f} MB")
        print(f"  plain copy (+fsync)           {copy_s:7.3f} s  {size / copy_s / 1e6:8.1f} MB/s")
        print(
            f"  upload + validation           {upload_s:7.3f} s  {size / upload_s / 1e6:8.1f}"
            f" MB/s   ratio {copy_s / upload_s:.2f} (target >= 0.5)"
        )

        # 2. Server memory while receiving a big upload.
        big = work / "big.bin"
        block = os.urandom(CHUNK)
        digest = hashlib.sha256()
        with open(big, "wb") as f:
            for _ in range(int(args.big_gb * 1024**3) // CHUNK):
                f.write(block)
                digest.update(block)
        children = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
        ).stdout.split()
        pids = [server.pid, *map(int, children)]
        before = _tree_peak(pids)
        start = time.perf_counter()
        _, peak = upload(big, sha256=digest.hexdigest(), watch=pids)
        elapsed = time.perf_counter() - start
        print(
            f"big upload: {big.stat().st_size / 1024**3:.2f} GiB in {elapsed:.1f} s "
            f"({big.stat().st_size / elapsed / 1e6:.0f} MB/s)"
        )
        print(
            f"  server peak RSS before {before / 1024:.0f} MiB, during {peak / 1024:.0f} MiB "
            "(target < 200 MiB)"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
