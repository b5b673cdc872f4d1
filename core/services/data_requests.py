"""Data requests: an operator's right of access and portability (docs/privacy.md, "Access
and portability").

One action asks for an archive of everything held about an operator; a job builds it
(`core.access_archive`, progress on the row), stores it under `data-requests/<id>.zip`, and
the person who asked downloads it once: the download spends the request and the file is
deleted as soon as it has been sent. An archive not downloaded is deleted when it expires
(`ACCESS_ARCHIVE_TTL_HOURS` after it was asked for), on the next access or by the job
system's cleanup (`core.jobs`). Each step is audited (asked, built, downloaded, expired);
the events name the request and the operator's code, never the person.

Who may: the person signed in as the operator, for themselves; an admin of the operator's
team (`Right.MANAGE`), on the person's request. Anyone else is told the operator does not
exist (another team's) or is refused (another operator of one's own team).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core import access, access_archive, job_queue
from core.errors import Conflict, DomainError, NotPermitted
from core.models import AuditEvent, DataRequest, Operator
from core.services.audit import record_audit
from core.services.consent import may_act_for

log = logging.getLogger(__name__)

BUILD_JOB = "core.tasks.build_access_archive_job"
# States in which a request still has (or will have) an archive to expire.
_LIVE = [DataRequest.State.QUEUED, DataRequest.State.RUNNING, DataRequest.State.READY]


class RequestGone(DomainError):
    """The archive was downloaded already, expired, or never built (failed)."""

    code = "gone"
    status = 410


def archive_key(request: DataRequest) -> str:
    return f"data-requests/{request.pk}.zip"


def visible_requests(actor) -> QuerySet[DataRequest]:
    """The requests `actor` may see: those they asked, those about their own operator code,
    and every request of the teams they administer."""
    requests = DataRequest.objects.select_related("operator", "team", "requested_by")
    if actor is None or not actor.is_authenticated or access.is_robot(actor):
        return requests.none()
    if actor.is_superuser:
        return requests
    return requests.filter(
        Q(requested_by=actor) | Q(operator__user=actor) | Q(team__in=access.managed_teams(actor))
    )


def request_access(*, actor, operator: Operator, include_files: bool = False) -> DataRequest:
    """Ask for `operator`'s access archive; a job builds it. Raises NotPermitted unless the
    actor is that operator or an admin of its team (callers answer 404 first for an operator
    the actor may not see)."""
    if not may_act_for(actor, operator):
        raise NotPermitted(
            "Only the operator themselves or an admin of its team may ask for its data."
        )
    now = timezone.now()
    with transaction.atomic():
        request = DataRequest.objects.create(
            team_id=operator.team_id,
            operator=operator,
            requested_by=actor,
            include_files=include_files,
            expires_at=now + timedelta(hours=settings.ACCESS_ARCHIVE_TTL_HOURS),
        )
        _audit(actor, AuditEvent.Action.CREATE, request, step="requested")
        job_queue.enqueue_on_commit(BUILD_JOB, str(request.pk))
    return request


def _audit(actor, action: str, request: DataRequest, *, step: str, **extra) -> None:
    # The request's id, kind and the operator's code: no name, e-mail or account.
    record_audit(
        actor=actor,
        action=action,
        obj=request,
        team=request.team,
        after={
            "step": step,
            "kind": request.kind,
            "operator": request.operator.code,
            "include_files": request.include_files,
            **extra,
        },
    )


def _set_progress(request_id, percent: int, step: str) -> None:
    DataRequest.objects.filter(pk=request_id).update(progress=percent, step=step[:80])


def build_archive(*, request_id) -> DataRequest:
    """The job: write the archive, store it, mark the request ready. Idempotent: a request
    no longer queued or running is left as it is; a running one (its worker died) is built
    again from the start, replacing a file the dead build stored."""
    with transaction.atomic():
        request = (
            DataRequest.objects.select_for_update(of=("self",))
            .select_related("operator__team", "operator__user", "team")
            .get(pk=request_id)
        )
        if request.state not in (DataRequest.State.QUEUED, DataRequest.State.RUNNING):
            return request
        request.state = DataRequest.State.RUNNING
        request.started_at = timezone.now()
        request.progress, request.step = 0, "starting"
        request.save(update_fields=["state", "started_at", "progress", "step"])
    started = time.perf_counter()
    key = archive_key(request)
    try:
        with tempfile.TemporaryDirectory(prefix="pg-access-") as tmp:
            out = Path(tmp) / "archive.zip"
            size, checksum = access_archive.write_archive(
                request.operator,
                out,
                include_files=request.include_files,
                progress=lambda percent, step: _set_progress(request_id, percent, step),
            )
            _set_progress(request_id, 95, "storing the archive")
            if default_storage.exists(key):
                default_storage.delete(key)
            with open(out, "rb") as f:
                stored = default_storage.save(key, File(f))
    except Exception as exc:
        log.exception("access archive %s failed", request_id)
        DataRequest.objects.filter(pk=request_id).update(
            state=DataRequest.State.FAILED,
            error=f"The archive could not be built ({type(exc).__name__}); the server log "
            "has the details.",
            finished_at=timezone.now(),
        )
        raise
    with transaction.atomic():
        DataRequest.objects.filter(pk=request_id).update(
            state=DataRequest.State.READY,
            file=stored,
            size_bytes=size,
            checksum=checksum,
            progress=100,
            step="ready",
            finished_at=timezone.now(),
        )
        request.refresh_from_db()
        _audit(None, AuditEvent.Action.UPDATE, request, step="built", size_bytes=size)
    log.info("access archive %s built in %.1f s", request_id, time.perf_counter() - started)
    return request


def expire(request: DataRequest, *, actor=None) -> bool:
    """Mark a request past its expiry expired and delete its archive (audited once).
    Returns whether it did."""
    with transaction.atomic():
        changed = DataRequest.objects.filter(
            pk=request.pk, expires_at__lte=timezone.now(), state__in=_LIVE
        ).update(state=DataRequest.State.EXPIRED)
        if changed:
            _audit(actor, AuditEvent.Action.DELETE, request, step="expired")
    if changed:
        delete_archive(request)
    return bool(changed)


def claim_download(*, actor, request: DataRequest) -> DataRequest:
    """Spend `request`'s one download: the caller streams `request.file`, then deletes it
    (`delete_archive`). Raises NotPermitted (not
    the person who asked), RequestGone (downloaded, expired, failed), DomainError 409 (not
    built yet)."""
    if actor is None or request.requested_by_id != actor.pk:
        raise NotPermitted("Only the person who asked for this archive may download it.")
    if expire(request, actor=actor):
        raise RequestGone("The archive expired and was deleted; ask for a new one.")
    if request.state in (DataRequest.State.QUEUED, DataRequest.State.RUNNING):
        raise Conflict("The archive is still being built.")
    now = timezone.now()
    with transaction.atomic():
        claimed = DataRequest.objects.filter(
            pk=request.pk, state=DataRequest.State.READY, expires_at__gt=now
        ).update(state=DataRequest.State.DOWNLOADED, downloaded_at=now)
        if not claimed:
            raise RequestGone(
                "This archive can be downloaded once and is gone (downloaded, expired or "
                "failed); ask for a new one."
            )
        request.refresh_from_db()
        _audit(actor, AuditEvent.Action.UPDATE, request, step="downloaded")
    return request


def delete_archive(request: DataRequest) -> None:
    """Delete a request's archive file (once sent, or expired) and forget its key."""
    if request.file:
        with contextlib.suppress(FileNotFoundError):
            default_storage.delete(request.file)
    DataRequest.objects.filter(pk=request.pk).update(file="")
    request.file = ""


def expire_due(*, limit: int = 200) -> int:
    """The cleanup pass (run by the workers' reaper): expire every request past its expiry,
    and delete the file of a download that never finished sending (the process died) ten
    minutes on. Returns how many requests it expired or cleaned."""
    now = timezone.now()
    due = DataRequest.objects.filter(expires_at__lte=now, state__in=_LIVE).select_related(
        "operator", "team"
    )
    done = sum(expire(request) for request in due[:limit])
    left = DataRequest.objects.filter(
        state=DataRequest.State.DOWNLOADED, downloaded_at__lte=now - timedelta(minutes=10)
    ).exclude(file="")
    for request in left[:limit]:
        delete_archive(request)
        done += 1
    return done
