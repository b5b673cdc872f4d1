"""PushT as a robot of the platform, through the robot client only (docs/simulation.md).

- `record_demonstrations`: the scripted expert teleoperates in a session (opened against a
  collection protocol, or the console's, by code); the platform's next condition decides what
  is set up next; each rollout is recorded with `EpisodeWriter` into the outbox and uploaded.
- `run_campaign`: ``next-trial`` -> load the policy the trial names -> set up its condition
  -> roll out and record -> upload -> report outcome, stages and failure codes with the
  episode attached, until no trial is left.

Robots cannot label episodes (labels are people's, docs/api.md): the runner records the
coverage stages as stage events, so the task's automatic checks (``stage_by_time``) judge
each demonstration, and an operator labels it in the console.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from proving_ground.client.api import CLIENT_VERSION, ProvingGroundClient
from proving_ground.client.outbox import Outbox
from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter
from proving_ground.sim.conditions import InitialState, condition_initial_state, derive_seed
from proving_ground.sim.env import (
    DEFAULT_MAX_STEPS,
    SUCCESS_COVERAGE,
    Rollout,
    StepRecord,
    make_pusht_env,
    rollout,
)
from proving_ground.sim.expert import expert_policy
from proving_ground.sim.policies import load_policy
from proving_ground.sim.spec import derive_spec

# The PushT task's criteria (pg-criteria/1): the stages and failure codes the runner
# reports, and the checks that judge a recorded rollout.
PUSHT_CRITERIA: dict[str, Any] = {
    "schema": "pg-criteria/1",
    "success": {
        "description": f"At least {SUCCESS_COVERAGE:.0%} of the goal covered by the T.",
        "check": "half-covered",
    },
    "stages": [
        {"id": "cover_25", "description": "A quarter of the goal covered", "weight": 0.25},
        {"id": "cover_50", "description": "Half of the goal covered", "weight": 0.25},
        {"id": "cover_80", "description": "80% of the goal covered", "weight": 0.5},
    ],
    "failure_codes": [
        {"code": "timeout", "description": "The step limit ran out before success"},
        {"code": "block_off_table", "description": "The T left the table"},
    ],
    "checks": [
        {"id": "finite", "type": "finite"},
        {"id": "half-covered", "type": "stage_by_time", "stage": "cover_50", "by_s": 30},
    ],
}


@dataclass
class RecordedRollout:
    rollout: Rollout
    episode_id: str
    path: Path


def check_spec(client: ProvingGroundClient, env) -> dict[str, Any]:
    """The robot's spec from the server, checked against the one the environment gives."""
    served = client.embodiment()["spec"]
    derived = derive_spec(env)
    for key in ("observations", "action", "cameras"):
        if served.get(key) != derived.get(key):
            raise ValueError(
                f"the robot's embodiment spec differs from the environment's in {key!r}: "
                f"server {served.get(key)!r}, environment {derived.get(key)!r}"
            )
    return served


def record_rollout(
    outbox: Outbox,
    env,
    policy,
    initial: InitialState,
    *,
    spec: dict[str, Any],
    session_id: str,
    condition_id: str | None,
    robot: str,
    task_version: str,
    operator: str,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> RecordedRollout:
    """Roll out once, recording every step into the outbox, bound to the session."""
    qpos_dtype = np.dtype(spec["observations"]["qpos"]["dtype"])
    camera = spec["cameras"][0]["name"]
    with outbox.recording(session_id=session_id, condition=condition_id) as rec:
        with EpisodeWriter(
            rec.path,
            spec,
            episode_id=rec.episode_id,
            robot=robot,
            task_version=task_version,
            operator=operator,
            software={"proving_ground.sim": CLIENT_VERSION, **initial.as_record()},
        ) as writer:

            def on_step(step: StepRecord) -> None:
                writer.add_step(step.t, {"qpos": step.agent_pos.astype(qpos_dtype)}, step.action)
                writer.add_frame(camera, step.t, encode_jpeg(step.pixels, quality=90))

            result = rollout(
                env,
                policy,
                initial,
                control_hz=float(spec["control_hz"]),
                max_steps=max_steps,
                on_step=on_step,
            )
            for stage, t in result.stages.items():
                writer.add_event("stage", stage, t)
    return RecordedRollout(result, rec.episode_id, rec.path)


def _flush(client: ProvingGroundClient, outbox: Outbox) -> list[str]:
    """Upload what is pending; the episode ids that went up. Failures stay in the outbox."""
    return [r.episode_id for r in outbox.flush(client) if r.ok]


def record_demonstrations(
    client: ProvingGroundClient,
    *,
    outbox: Outbox,
    count: int,
    session: str | None = None,
    task_version: str | None = None,
    protocol: str | None = None,
    operator: str = "OP-EXPERT",
    noise: float = 0.05,
    seed: int = 0,
    max_steps: int = DEFAULT_MAX_STEPS,
    env=None,
    log=print,
) -> list[RecordedRollout]:
    """Record ``count`` expert demonstrations into ``session`` (an id or console code; it
    stays open) or a new teleop session on ``task_version`` against ``protocol`` (closed at
    the end). Each rollout sets up the condition the platform asks for next."""
    env = env or make_pusht_env()
    spec = check_spec(client, env)
    client.heartbeat(software_version=f"proving_ground.sim {CLIENT_VERSION}")
    _flush(client, outbox)  # whatever a crash left behind
    if session:  # the console's session, by its code: its task version and operator
        opened = client.session_by_code(session)
        session_id, version, operator = opened["id"], opened["task_version"], opened["operator"]
    else:
        if task_version is None:
            raise ValueError("give a session code or a task version")
        opened = client.open_session(task_version, operator, protocol=protocol)
        session_id, version = opened["id"], task_version
    policy = expert_policy(noise=noise, seed=seed)
    recorded = []
    for i in range(count):
        condition = client.next_condition(session_id)
        initial = condition_initial_state(condition, derive_seed(seed, session_id, i))
        take = record_rollout(
            outbox,
            env,
            policy,
            initial,
            spec=spec,
            session_id=session_id,
            condition_id=condition["id"] if condition else None,
            robot=client.robot_id,
            task_version=version,
            operator=operator,
            max_steps=max_steps,
        )
        _flush(client, outbox)  # uploaded before asking the next condition: it counts
        log(
            f"demo {i + 1}/{count}: {initial.factor}={initial.level} seed {initial.seed}: "
            f"coverage {take.rollout.max_coverage:.2f}, success {take.rollout.success}"
        )
        recorded.append(take)
    if not session:
        client.close_session(session_id)
    return recorded


def run_campaign(
    client: ProvingGroundClient,
    campaign: str,
    *,
    outbox: Outbox,
    operator: str,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_trials: int | None = None,
    env=None,
    log=print,
) -> list[dict[str, Any]]:
    """Run the campaign's trials this robot is given until none is left (or
    ``max_trials``); returns the trial reports. Restart-safe: a held trial is handed out
    again, pending recordings go up first, and a report is sent once per trial."""
    env = env or make_pusht_env()
    spec = check_spec(client, env)
    client.heartbeat(software_version=f"proving_ground.sim {CLIENT_VERSION}")
    _flush(client, outbox)
    sessions: dict[str, str] = {}
    policies: dict[str, Any] = {}
    reports = []
    try:
        while max_trials is None or len(reports) < max_trials:
            trial = client.next_trial(campaign)
            if trial is None:
                break
            load = trial["load"]
            key = repr(sorted(load.items()))
            if key not in policies:
                policies[key] = load_policy(load)
            version = trial["task_version"]["id"]
            if version not in sessions:
                opened = client.open_session(version, operator, kind="evaluation")
                sessions[version] = opened["id"]
            condition = trial["condition"]
            initial = condition_initial_state(condition, derive_seed(trial["id"]))
            take = record_rollout(
                outbox,
                env,
                policies[key],
                initial,
                spec=spec,
                session_id=sessions[version],
                condition_id=None,
                robot=client.robot_id,
                task_version=version,
                operator=operator,
                max_steps=max_steps,
            )
            sent = _flush(client, outbox)
            result = take.rollout
            report = client.report_trial(
                trial["id"],
                {
                    "outcome": "success" if result.success else "failure",
                    "stages_reached": list(result.stages),
                    "failure_codes": result.failure_codes,
                    "episode": take.episode_id if take.episode_id in sent else None,
                    "notes": f"seed {initial.seed}; max coverage {result.max_coverage:.3f}",
                },
            )
            log(
                f"trial {trial['order']} {trial['alias']} {initial.factor}={initial.level}: "
                f"{'success' if result.success else 'failure'} "
                f"(coverage {result.max_coverage:.2f})"
            )
            reports.append(report)
    finally:
        for session_id in sessions.values():
            client.close_session(session_id)
    return reports
