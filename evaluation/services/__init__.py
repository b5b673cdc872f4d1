"""Every write of the evaluation app: policies, benchmarks, campaigns, trials, reports and
leaderboard snapshots.

Rules enforced here, before anything is saved:
- admins and researchers of a team define its policies, benchmarks and campaigns;
- a policy version's observation/action contract is checked against each robot's embodiment
  and each task version must allow it, before trials are scheduled (and again when a robot
  asks for a trial, since a robot's embodiment may change);
- a published benchmark's cells are frozen; campaigns run only on published benchmarks;
- a robot takes and reports only its own trials, one at a time; people (operators and admins
  of the campaign's team) enter and correct outcomes, and every report is kept;
- a leaderboard refresh is queued after a result commits, never computed inside it.

Each function documents the domain errors it raises (`core.errors`, `evaluation.errors`).

Each module is imported by its callers (`from evaluation.services import campaigns`); this
package re-exports nothing.
- `_common`: what the modules share (rights checks, sharing);
- `policies`: policies, policy versions and their observation/action contract;
- `benchmarks`: benchmarks, their cells, editing and publishing;
- `campaigns`: campaigns, their schedule, starting and finishing;
- `blinding`: what a blinded campaign's audit trail holds (a seed commitment, aliases
  only) until the audited reveal when it is done;
- `trials`: the robot's trial flow and results (reports, corrections, episode checks), and
  who may score them (`may_score`);
- `leaderboard_queue`: queueing leaderboard refreshes once a change commits;
- `leaderboards`: computing, storing and reading leaderboard snapshots.
"""
