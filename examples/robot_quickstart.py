"""A robot's first episode: record a synthetic demonstration and send it to Proving Ground.

With ``make run`` serving in another terminal::

    .venv/bin/python examples/robot_quickstart.py --url http://127.0.0.1:8000 \\
        --key "$(.venv/bin/python manage.py create_robot_key demo-arm-1)"

It checks the client against the server, says hello (heartbeat), reads the robot's embodiment
spec and the demo task ``pick-cube``, opens a teleop session with operator ``OP-DEMO1`` (or,
with ``--session CODE``, records into the session whose console shows that code), records
a few seconds (7 joints at 200 Hz, two 640x480 JPEG cameras at 30 fps, stage events)
into an outbox on disk, uploads it resumably, waits until the server has processed it and
prints what the server measured. Kill it at any point and run it again: whatever was
recorded or half-sent before is recovered and uploaded too. See docs/robot-quickstart.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from proving_ground.client.api import CLIENT_VERSION, ProvingGroundClient
from proving_ground.client.cli import TerminalProgress
from proving_ground.client.errors import ProvingGroundError
from proving_ground.client.outbox import Outbox
from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter

# When the synthetic operator reaches each stage of pick-cube, in seconds from the start.
STAGES_S = {"reach": 0.8, "grasp": 1.6, "lift": 2.4}


def synthetic_frame(camera: int, t: float, width: int, height: int) -> np.ndarray:
    """An RGB frame of a grey table with a red cube sliding across it (each camera sees it
    from elsewhere), so consecutive frames differ as a live camera's do."""
    rows = np.linspace(90, 160, height, dtype=np.float32)[:, None]
    frame = np.repeat(np.broadcast_to(rows, (height, width))[:, :, None], 3, axis=2)
    frame = frame.astype(np.uint8)
    size = height // 6
    x = int((0.2 + 0.15 * camera + 0.2 * np.sin(t)) * (width - size))
    y = int((0.5 - 0.1 * camera + 0.2 * np.cos(t)) * (height - size))
    frame[y : y + size, x : x + size] = (200, 30, 30)
    return frame


def record_demo_episode(
    path: Path,
    spec: dict,
    *,
    episode_id: str,
    robot: str,
    task_version: str,
    operator: str,
    duration_s: float,
) -> Path:
    """Record ``duration_s`` seconds of a synthetic pick: every observation and the action
    at the spec's ``control_hz``, every camera at its ``fps``, and a stage event per stage.

    Timestamps here are the ideal ones; a real robot passes ``time.monotonic()`` measured
    at each step, so the server measures the rate it really reached."""
    control_hz = float(spec["control_hz"])
    joints = spec["action"]["shape"][0]
    cameras = spec["cameras"]
    next_frame_t = [0.0] * len(cameras)
    with EpisodeWriter(
        path,
        spec,
        episode_id=episode_id,
        robot=robot,
        task_version=task_version,
        operator=operator,
        software={"robot_quickstart": CLIENT_VERSION},
    ) as writer:
        for step in range(int(duration_s * control_hz)):
            t = step / control_hz
            qpos = np.sin(t + np.arange(joints, dtype=np.float32) / joints).astype(np.float32)
            qvel = np.cos(t + np.arange(joints, dtype=np.float32) / joints).astype(np.float32)
            observations = {}
            for key, array in spec["observations"].items():
                base = qvel if key == "qvel" else qpos
                observations[key] = np.resize(base, array["shape"]).astype(array["dtype"])
            writer.add_step(t, observations, qpos)
            for i, cam in enumerate(cameras):
                if t >= next_frame_t[i]:
                    image = synthetic_frame(i, t, cam["width"], cam["height"])
                    writer.add_frame(cam["name"], t, encode_jpeg(image, quality=85))
                    next_frame_t[i] += 1.0 / cam["fps"]
        for stage, t in STAGES_S.items():
            if t < duration_s:
                writer.add_event("stage", stage, t)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
    parser.add_argument("--key", required=True, help="this robot's API key")
    parser.add_argument("--team", default="demo-lab")
    parser.add_argument("--task", default="pick-cube", help="task slug")
    parser.add_argument("--operator", default="OP-DEMO1", help="operator pseudonym")
    parser.add_argument(
        "--session",
        metavar="CODE",
        help="record into the open session whose console shows this code (its task, operator "
        "and condition) instead of opening one; it stays open",
    )
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--outbox", type=Path, default=Path("var/robot-outbox"))
    parser.add_argument("--timeout-s", type=float, default=300.0, help="wait for processing")
    args = parser.parse_args(argv)

    client = ProvingGroundClient(args.url, args.key)
    try:
        server = client.check_version()
        print(f"server {server['server_version']}, API {server['api_version']}, client ok")
        me = client.whoami()
        client.heartbeat(software_version=f"robot_quickstart {CLIENT_VERSION}")
        spec = client.embodiment()["spec"]
        print(
            f"robot {me['name']}: {len(spec['joint_names'])} joints at "
            f"{spec['control_hz']} Hz, cameras {[c['name'] for c in spec['cameras']]}"
        )

        if args.session:
            # The console's session: its task version and operator, left open afterwards.
            session = client.session_by_code(args.session)
            version_id, operator = session["task_version"], session["operator"]
            print(f"session {session['code']} ({session['id']}): operator {operator}")
        else:
            tasks = client.tasks(team=args.team)
            task = next((t for t in tasks if t["slug"] == args.task), None)
            if task is None or task["latest_version"] is None:
                print(f"no task {args.task!r} in team {args.team!r} (run `make seed`)")
                return 1
            version_id, operator = task["latest_version"]["id"], args.operator
            session = client.open_session(version_id, operator)
            print(
                f"session {session['code']} open: {task['name']} "
                f"v{task['latest_version']['number']}, operator {operator}"
            )
        condition = client.next_condition(session["id"])
        if condition is not None:
            print(
                f"set up: {condition['factor']}={condition['level']}: "
                f"{condition['reset_instructions']}"
            )

        outbox = Outbox(args.outbox)
        with outbox.recording(
            session_id=session["id"], condition=condition["id"] if condition else None
        ) as rec:
            record_demo_episode(
                rec.path,
                spec,
                episode_id=rec.episode_id,
                robot=me["id"],
                task_version=version_id,
                operator=operator,
                duration_s=args.duration_s,
            )
        print(f"recorded {rec.path} ({rec.path.stat().st_size / 2**20:.1f} MiB)")

        results = outbox.flush(
            client,
            on_progress=lambda path, sent, total: TerminalProgress(path.name)(sent, total),
        )
        failed = 0
        for result in results:
            if not result.ok:
                failed += 1
                print(
                    f"{result.path.name}: not uploaded ({result.error}); it stays in the "
                    f"outbox for the next run"
                )
                continue
            episode = client.wait_until_processed(result.episode_id, timeout_s=args.timeout_s)
            failed += episode["state"] != "ready"
            print_episode(episode)
        if not args.session:
            client.close_session(session["id"])
        return 1 if failed else 0
    except ProvingGroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def print_episode(episode: dict) -> None:
    print(f"episode {episode['id']}: {episode['state']}")
    if episode["state"] == "rejected":
        print(f"  rejected: {episode['rejection_code']}")
        for problem in (episode.get("validation_report") or {}).get("problems", []):
            print(f"  - {problem['code']}: {problem['message']}")
        return
    print(
        f"  {episode['num_steps']} steps, {episode['duration_s']:.2f} s at "
        f"{episode['measured_hz']:.1f} Hz; frames {episode['camera_frame_counts']}; "
        f"truncated {episode['truncated']}"
    )
    for check in episode.get("check_results") or []:
        print(f"  check {check.get('check_id')}: {check.get('status')}")
    if episode["quality_flags"]:
        print(f"  quality flags: {', '.join(episode['quality_flags'])}")


if __name__ == "__main__":
    raise SystemExit(main())
