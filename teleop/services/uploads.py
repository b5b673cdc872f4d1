"""Episodes and their uploads: an episode with its first upload, tus uploads received in
chunks (leases, checksums, the file's SHA-256 as the bytes pass), completion, termination."""

from __future__ import annotations

import base64
import hashlib
import math
import time
import uuid
from datetime import timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import job_queue
from core.errors import InvalidInput
from core.models import Condition
from core.services import audit
from teleop import consent, storage
from teleop.errors import (
    ChecksumMismatch,
    ChunkTooLarge,
    EpisodeIdConflict,
    SessionClosed,
    UploadBusy,
    UploadExpired,
    UploadNotActive,
    UploadOffsetMismatch,
)
from teleop.models import Episode, ProtocolTarget, Session, Upload, UploadPart
from teleop.resumable_sha256 import ResumableSHA256
from teleop.services.sessions import require_recorder

READ_PIECE_BYTES = 1024 * 1024


# --- Episodes and uploads -------------------------------------------------------------------


def create_episode(
    *,
    actor,
    episode_id,
    session: Session,
    size_bytes: int,
    sha256: str,
    condition: Condition | None = None,
) -> tuple[Episode, Upload, bool]:
    """Register an episode the client recorded and open its upload.

    Idempotent by the client's id: the same id with the same content returns the existing
    episode (and its active upload, or a new one if none is active). Returns
    (episode, upload, created). Raises NotPermitted, SessionClosed, InvalidInput,
    EpisodeIdConflict (the id exists with other content)."""
    require_recorder(actor, session.robot)
    sha256 = sha256.lower()
    if size_bytes <= 0 or size_bytes > settings.MAX_EPISODE_BYTES:
        raise InvalidInput(
            f"size_bytes must be between 1 and {settings.MAX_EPISODE_BYTES}.",
            fields={"size_bytes": ["Out of range."]},
        )
    existing = Episode.objects.filter(pk=episode_id).first()
    if existing is not None:
        same = (
            existing.session_id == session.pk
            and existing.declared_sha256 == sha256
            and existing.declared_size_bytes == size_bytes
        )
        if not same:
            raise EpisodeIdConflict(f"Episode {episode_id} exists with other content.")
        return existing, _active_or_new_upload(existing), False
    if session.status != Session.Status.OPEN:
        raise SessionClosed("The session is closed; open a new one.")
    if (
        condition is not None
        and session.protocol_id is not None
        and not (
            ProtocolTarget.objects.filter(
                protocol_id=session.protocol_id, condition=condition
            ).exists()
        )
    ):
        raise InvalidInput(
            "This condition is not part of the session's protocol.",
            fields={"condition": ["Not in the protocol."]},
        )
    with transaction.atomic():
        episode, created = Episode.objects.get_or_create(
            pk=episode_id,
            defaults={
                "session": session,
                "team_id": session.team_id,
                "robot_id": session.robot_id,
                "task_version_id": session.task_version_id,
                "operator_id": session.operator_id,
                "condition": condition,
                "declared_size_bytes": size_bytes,
                "declared_sha256": sha256,
                **consent.consent_at_creation(session),
            },
        )
        if not created:  # lost a race with an identical retry
            return create_episode(
                actor=actor,
                episode_id=episode_id,
                session=session,
                size_bytes=size_bytes,
                sha256=sha256,
                condition=condition,
            )
        upload = _new_upload(episode)
        audit.record_audit(actor=actor, action="create", obj=episode, after=audit.snapshot(episode))
    return episode, upload, True


def _new_upload(episode: Episode) -> Upload:
    return Upload.objects.create(
        episode=episode,
        length=episode.declared_size_bytes,
        expires_at=timezone.now() + timedelta(hours=settings.UPLOAD_EXPIRY_HOURS),
    )


def _active_or_new_upload(episode: Episode) -> Upload:
    with transaction.atomic():
        Episode.objects.select_for_update().get(pk=episode.pk)
        upload = episode.uploads.filter(state=Upload.State.ACTIVE).first()
        if upload is not None:
            return upload
        done = episode.uploads.filter(state=Upload.State.COMPLETE).first()
        if done is not None or episode.state != Episode.State.CREATED:
            return done or episode.uploads.first()
        return _new_upload(episode)


def create_upload(*, actor, episode: Episode) -> Upload:
    """tus creation: an upload of the episode's file starting at offset 0 (a tus client that
    creates an upload sends from 0, and resumes with HEAD on the URL it was given).

    The episode's active upload is returned if it has received nothing and no chunk is
    arriving; otherwise it is terminated (its parts dropped) and a new one opened. Raises
    NotPermitted, UploadNotActive (the episode's file was already received)."""
    require_recorder(actor, episode.robot)
    with transaction.atomic():
        episode = Episode.objects.select_for_update().get(pk=episode.pk)
        if episode.state not in (Episode.State.CREATED, Episode.State.UPLOADING):
            raise UploadNotActive(
                f"The episode's file was already received (the episode is {episode.state})."
            )
        now = timezone.now()
        active = episode.uploads.select_for_update().filter(state=Upload.State.ACTIVE).first()
        if active is not None:
            untouched = (
                active.offset == 0
                and active.expires_at > now
                and (active.lease_expires_at is None or active.lease_expires_at <= now)
            )
            if untouched:
                return active
            active.state = Upload.State.TERMINATED
            active.save(update_fields=["state", "updated_at"])
            replaced = active.pk
            transaction.on_commit(lambda: storage.discard_upload_parts(replaced))
        Episode.objects.filter(pk=episode.pk, state=Episode.State.UPLOADING).update(
            state=Episode.State.CREATED
        )
        return _new_upload(episode)


def _require_uploader(actor, upload: Upload) -> None:
    require_recorder(actor, upload.episode.robot)


def parse_checksum_header(value: str | None) -> tuple[str, bytes] | None:
    """`Upload-Checksum: <sha1|sha256> <base64>` → (algorithm, digest). tus 1.0 requires a
    server with the checksum extension to take sha1; sha256 is what our client sends.
    Raises InvalidInput otherwise."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_DIGEST_BYTES:
        raise InvalidInput("Upload-Checksum must use sha1 or sha256.")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except ValueError as exc:
        raise InvalidInput("Upload-Checksum is not valid base64.") from exc
    if len(digest) != CHECKSUM_DIGEST_BYTES[algorithm]:
        raise InvalidInput(f"Upload-Checksum is not a {algorithm} digest.")
    return algorithm, digest


CHECKSUM_DIGEST_BYTES = {"sha1": 20, "sha256": 32}


def _lease_seconds() -> int:
    return settings.UPLOAD_CHUNK_LEASE_S


def _take_chunk_lease(*, actor, upload_id, offset: int, length: int) -> tuple[Upload, uuid.UUID]:
    """Check the chunk against the upload and lease the upload to this request.

    One short UPDATE, committed at once: no transaction or row lock stays open while the
    chunk's bytes arrive. A chunk racing for the same upload finds the lease taken (or the
    offset moved) and gets UploadBusy / UploadOffsetMismatch."""
    upload = Upload.objects.select_related("episode", "episode__robot").get(pk=upload_id)
    _require_uploader(actor, upload)
    if upload.state != Upload.State.ACTIVE:
        raise UploadNotActive(f"The upload is {upload.state}.")
    now = timezone.now()
    if upload.expires_at <= now:
        raise UploadExpired("The upload expired; create the episode's upload again.")
    if offset + length > upload.length:
        raise ChunkTooLarge("The chunk goes past the declared Upload-Length.")
    token = uuid.uuid4()
    taken = (
        Upload.objects.filter(pk=upload_id, state=Upload.State.ACTIVE, offset=offset)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
        .update(lease_token=token, lease_expires_at=now + timedelta(seconds=_lease_seconds()))
    )
    if taken:
        upload.refresh_from_db()  # the hash state as of this offset
        return upload, token
    current = Upload.objects.get(pk=upload_id)
    if current.state != Upload.State.ACTIVE:
        raise UploadNotActive(f"The upload is {current.state}.")
    if current.offset != offset:
        raise UploadOffsetMismatch(
            f"Upload-Offset {offset} does not match the server's offset {current.offset}."
        )
    wait_s = max(1, math.ceil((current.lease_expires_at - now).total_seconds()))
    raise UploadBusy("Another chunk of this upload is being received; retry.", retry_after_s=wait_s)


def _extend_chunk_lease(upload_id, token) -> bool:
    """Keep the lease while bytes keep arriving. False when it was lost (it expired and
    another request took the upload, or the upload was terminated)."""
    until = timezone.now() + timedelta(seconds=_lease_seconds())
    return bool(
        Upload.objects.filter(pk=upload_id, lease_token=token, state=Upload.State.ACTIVE).update(
            lease_expires_at=until
        )
    )


def _release_chunk_lease(upload_id, token) -> None:
    Upload.objects.filter(pk=upload_id, lease_token=token).update(
        lease_token=None, lease_expires_at=None
    )


def receive_chunk(
    *,
    actor,
    upload_id,
    offset: int,
    length: int,
    stream: BinaryIO,
    checksum: tuple[str, bytes] | None = None,
) -> Upload:
    """Receive one chunk of `length` bytes (any size) read from `stream` at `offset`.

    Any web process takes any chunk: the bytes go to a scratch file on this machine (1 MiB
    pieces, never the chunk in memory) and into the default storage as `UploadPart`s of at
    most `storage.UPLOAD_PART_MAX_BYTES`, each stored as it fills, so neither memory nor the
    scratch file grows with the chunk; the whole file's SHA-256 state advances as the bytes
    pass. Without a checksum each full part is recorded (the offset moved) as soon as it is
    stored, so a request that dies later (a web process killed by its timeout) loses at most
    one part; with one, the parts are recorded once the whole chunk has matched it. If the
    client disconnects mid-chunk, what arrived is kept (unless a checksum was sent, which
    cannot be verified on part of a chunk), so it can resume from the new offset. On the
    last byte the upload completes without reading the file again (see `_complete_upload`).
    Raises NotPermitted, UploadBusy, UploadOffsetMismatch, UploadNotActive, UploadExpired,
    ChunkTooLarge (past the upload's length), ChecksumMismatch, InvalidInput."""
    upload, token = _take_chunk_lease(
        actor=actor, upload_id=upload_id, offset=offset, length=length
    )
    lease = _ChunkLease(upload.pk, token)
    parts: list[tuple[int, int, str]] = []  # (offset, size, key) stored, not yet recorded
    try:
        whole = ResumableSHA256.from_state(upload.sha256_state)
        chunk_hash = hashlib.new(checksum[0]) if checksum is not None else None
        received = 0
        while received < length:
            wanted = min(storage.UPLOAD_PART_MAX_BYTES, length - received)
            with storage.chunk_scratch_file() as scratch:
                got = _receive_into(scratch, stream, wanted, whole, chunk_hash, lease)
                if got:
                    scratch.seek(0)
                    key = storage.save_upload_part(upload.pk, offset + received, scratch)
                    parts.append((offset + received, got, key))
            received += got
            if checksum is None and got == wanted and received < length:
                upload = _record_chunk(upload, token, parts[0][0], parts, whole, lease=lease)
                parts = []
            else:
                lease.keep()
            if got < wanted:
                break  # the client went away; keep what arrived
        if checksum is not None and (received < length or chunk_hash.digest() != checksum[1]):
            if received < length:
                raise InvalidInput("The chunk ended early; nothing of it was kept.")
            raise ChecksumMismatch(f"The chunk's {checksum[0]} does not match Upload-Checksum.")
        if not parts:
            return upload
        return _record_chunk(upload, token, parts[0][0], parts, whole)
    except BaseException:
        for _, _, key in parts:
            storage.delete_upload_part(key)
        raise
    finally:
        _release_chunk_lease(upload.pk, token)


class _ChunkLease:
    """Keeps a chunk's lease on its upload while the chunk's bytes arrive and are stored."""

    def __init__(self, upload_id, token):
        self.upload_id, self.token = upload_id, token
        self.renew_every_s = max(1, _lease_seconds() // 3)
        self.renewed_at = time.monotonic()

    def keep(self) -> None:
        """Renew the lease when a third of it has passed; UploadBusy if it was lost."""
        if time.monotonic() - self.renewed_at <= self.renew_every_s:
            return
        if not _extend_chunk_lease(self.upload_id, self.token):
            raise UploadBusy("This chunk took too long and lost its turn; retry it.")
        self.renewed_at = time.monotonic()

    def until(self):
        """A renewed lease's end (and it counts as renewed now)."""
        self.renewed_at = time.monotonic()
        return timezone.now() + timedelta(seconds=_lease_seconds())


def _receive_into(scratch, stream, length: int, whole, chunk_hash, lease: _ChunkLease) -> int:
    """Copy up to `length` bytes from `stream` to `scratch`, hashing them; returns how many
    arrived (fewer when the client went away)."""
    received = 0
    while received < length:
        piece = stream.read(min(READ_PIECE_BYTES, length - received))
        if not piece:
            break
        scratch.write(piece)
        whole.update(piece)
        if chunk_hash is not None:
            chunk_hash.update(piece)
        received += len(piece)
        lease.keep()
    return received


def _record_chunk(
    upload: Upload,
    token,
    offset: int,
    parts: list[tuple[int, int, str]],
    whole,
    *,
    lease: _ChunkLease | None = None,
) -> Upload:
    """Advance the offset and hash state past stored parts (from `offset`), in one short
    transaction, if this request still holds the lease; then complete the upload on its
    last byte. The lease is released, or renewed when `lease` is given (more parts of the
    chunk are coming)."""
    received = sum(size for _, size, _ in parts)
    with transaction.atomic():
        moved = Upload.objects.filter(
            pk=upload.pk, lease_token=token, state=Upload.State.ACTIVE, offset=offset
        ).update(
            offset=offset + received,
            sha256_state=whole.state(),
            lease_token=token if lease is not None else None,
            lease_expires_at=lease.until() if lease is not None else None,
            updated_at=timezone.now(),
        )
        if not moved:
            raise UploadBusy("This chunk lost its turn (it took too long, or the upload ended).")
        UploadPart.objects.bulk_create(
            UploadPart(upload=upload, offset=at, size_bytes=size, key=key)
            for at, size, key in parts
        )
        Episode.objects.filter(pk=upload.episode_id, state=Episode.State.CREATED).update(
            state=Episode.State.UPLOADING
        )
        upload.refresh_from_db()
        if upload.offset == upload.length:
            _complete_upload(upload, whole.hexdigest())
    return upload


def _complete_upload(upload: Upload, actual_sha256: str) -> None:
    """Inside the last chunk's transaction: compare the whole file's SHA-256 (carried from
    chunk to chunk) with the declared one; queue processing after commit, or reject the
    episode and drop the parts."""
    episode = Episode.objects.select_for_update().get(pk=upload.episode_id)
    upload.state = Upload.State.COMPLETE
    upload.completed_at = timezone.now()
    upload.save(update_fields=["state", "completed_at", "updated_at"])
    if actual_sha256 != episode.declared_sha256:
        episode.state = Episode.State.REJECTED
        episode.rejection_code = "checksum_mismatch"
        episode.validation_report = {
            "ok": False,
            "problems": [
                {
                    "code": "checksum_mismatch",
                    "severity": "error",
                    "path": "/",
                    "message": f"The file's SHA-256 is {actual_sha256}, not the declared "
                    f"{episode.declared_sha256}.",
                }
            ],
        }
        episode.save(update_fields=["state", "rejection_code", "validation_report", "updated_at"])
        upload_id = upload.pk
        transaction.on_commit(lambda: storage.discard_upload_parts(upload_id))
        return
    episode.state = Episode.State.PROCESSING
    episode.sha256 = actual_sha256
    episode.size_bytes = upload.length
    episode.save(update_fields=["state", "sha256", "size_bytes", "updated_at"])
    enqueue_processing(episode.pk)


def enqueue_processing(episode_id) -> None:
    """Queue the processing job once the current transaction commits."""
    job_queue.enqueue_on_commit("teleop.tasks.process_episode_job", str(episode_id))


def terminate_upload(*, actor, upload_id) -> None:
    """tus termination: drop the bytes; the episode goes back to `created`."""
    with transaction.atomic():
        # A chunk still arriving loses its lease with the state; its part is then dropped.
        upload = (
            Upload.objects.select_for_update(of=("self",))
            .select_related("episode", "episode__robot")
            .get(pk=upload_id)
        )
        _require_uploader(actor, upload)
        if upload.state != Upload.State.ACTIVE:
            raise UploadNotActive(f"The upload is {upload.state}.")
        upload.state = Upload.State.TERMINATED
        upload.save(update_fields=["state", "updated_at"])
        Episode.objects.filter(pk=upload.episode_id, state=Episode.State.UPLOADING).update(
            state=Episode.State.CREATED
        )
        upload_pk = upload.pk
        transaction.on_commit(lambda: storage.discard_upload_parts(upload_pk))
