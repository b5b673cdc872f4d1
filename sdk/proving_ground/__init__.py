"""Proving Ground's robot SDK: everything that runs without the server's code or Django.

- `proving_ground.episode`: the pg-episode/1 HDF5 format (`spec`, `writer`, `reader`,
  `validate`).
- `proving_ground.client`: the robot client (API, resumable uploads, crash-safe outbox) and
  its command line ``proving-ground``.
- `proving_ground.replay`: Rerun recordings (``.rrd``) from episodes.
- `proving_ground.exports`: LeRobot v3.0 and robomimic datasets.
- `proving_ground.criteria`, `proving_ground.checks`: success criteria and their automatic
  checks on an episode.
- `proving_ground.stats`, `proving_ground.scoring`, `proving_ground.scheduling`: the
  evaluation statistics, leaderboard scoring and trial schedules.
- `proving_ground.files`: durable writes and digests.

Install with ``pip install ./sdk`` (``./sdk[all]`` for replay, exports and scipy). See
``docs/sdk.md``.
"""

__version__ = "0.1.0"
