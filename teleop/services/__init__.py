"""Every write of the recording app: sessions, episodes, uploads, processing, labels.

Rules enforced here, before anything is saved:
- a robot records only on itself; people record as operators or admins of the robot's team;
- an episode is added only to an open session, whose robot's embodiment the task version
  allows (checked when the session opens; the version is locked from then on);
- uploads take chunks one at a time under a short lease, at the current offset only;
- processing is idempotent and runs after the upload's transaction commits.
"""
