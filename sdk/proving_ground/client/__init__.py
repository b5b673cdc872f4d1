"""The robot-side client of Proving Ground: sessions, episodes and resumable uploads.

A robot's network is flaky and its process may die at any moment (a crash, a power cut, an
operator's Ctrl-C). The client is built so that neither loses an episode nor duplicates one:

- **Idempotent retries.** Every POST carries an ``Idempotency-Key`` (a uuid4 per logical
  operation, reused by each of its retries). When an answer is lost after the server acted,
  the retry gets the stored answer back (``Idempotent-Replayed: true``) instead of acting
  twice. Episodes are also idempotent by construction: their id is generated here (or read
  from the file) and the server refuses a second row with the same id. Retried: connection
  errors and timeouts, 429 and 502/503/504 (waiting ``Retry-After`` when the server says so),
  and ``409 idempotency_key_in_flight`` (the first attempt is still running); the waits grow
  exponentially, are capped, and carry jitter so that a fleet of robots coming back after an
  outage does not hammer the server in step. The budget is time, not a count: a request is
  retried for ``retry_for_s`` (2 minutes by default), which outlasts a database restart, a
  server's 30 s idempotency lease and a deploy. Any other 4xx is an answer, not a hiccup: it is
  raised at once as a `ProvingGroundError` with the server's ``error`` code and ``detail``.
- **Resumable uploads (tus 1.0.0).** A file goes up in chunks (8 MiB by default, at most
  16 MiB: the server streams any size, smaller chunks resend less) streamed from disk, each
  with its SHA-256 (``Upload-Checksum``), so memory stays flat whatever the file size and a
  corrupted chunk is refused (460) and resent.
  After a dropped connection, a 409 (stale offset, or the server still busy with a chunk) or
  a restart of the robot, the client asks the server for its offset (``HEAD``) and goes on
  from there: the server is the only source of truth about what arrived.
- **An outbox on disk.** `Outbox` is a directory the robot records into. Finished files wait
  there until the server confirms it has them whole; ``.partial`` files left by a crashed
  writer are recovered as truncated episodes (the server flags them, it does not reject
  them). All bookkeeping is files (the recording itself, a small JSON state file, the
  ``sent/`` folder), so it survives a restart: the robot just calls `Outbox.flush` again.

Free of Django: it needs ``requests`` and the standard library; reading an episode's id from
an HDF5 file imports `proving_ground.episode` (h5py, numpy) lazily. See ``docs/robot-quickstart.md``
and ``docs/api.md`` ("Recording: sessions, episodes and resumable uploads").

Modules: `errors` (`ProvingGroundError` and kin), `transfer` (constants and the small pieces of
an upload), `api` (`ProvingGroundClient`), `outbox` (`Outbox`), `cli` (the command line:
``proving-ground`` or ``python -m proving_ground.client --url URL --key KEY
{version,pending,flush,upload}``).
"""
