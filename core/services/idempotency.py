"""Idempotent requests: claiming a key (a lease), storing the answer, releasing a failed
claim, purging expired records."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from core.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from core.models import IdempotencyRecord

# --- Idempotency ----------------------------------------------------------------------------


def begin_idempotent_request(
    *, principal: str, key: str, fingerprint: str, method: str, path: str
) -> IdempotencyRecord:
    """Claim `key` for this request, or find the answer stored for it.

    Returns the record: `state == IN_FLIGHT` means this caller now runs the request and must
    call `complete_idempotent_request` or `release_idempotent_request`; `COMPLETED` means
    replay the stored answer. Raises IdempotencyKeyReused (same key, different request) and
    IdempotencyKeyInFlight (the first request with this key is still running; it carries
    how many seconds to wait).

    A claim is a lease: `expires_at` is `IDEMPOTENCY_IN_FLIGHT_LEASE_S` seconds after it is
    taken, and a claim past it is taken to have died with its request (a worker killed, the
    database gone before the release could be written), so a retry claims the key afresh.
    Completing the request turns the lease into the stored answer's lifetime
    (`IDEMPOTENCY_KEY_TTL_HOURS`)."""
    now = timezone.now()
    lease = timedelta(seconds=settings.IDEMPOTENCY_IN_FLIGHT_LEASE_S)
    # The common case, a key never seen, is one statement; the rest (a retry, a replay, an
    # expired row) takes the row lock below.
    claimed = _claim_new_idempotency_key(
        principal=principal,
        key=key,
        fingerprint=fingerprint,
        method=method,
        path=path[:500],
        now=now,
        expires_at=now + lease,
    )
    if claimed is not None:
        return claimed
    with transaction.atomic():
        record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
            principal=principal,
            key=key,
            defaults={
                "fingerprint": fingerprint,
                "method": method,
                "path": path[:500],
                "expires_at": now + lease,
            },
        )
        if created:
            return record
        if record.expires_at <= now:  # an answer past its lifetime, or a dead claim
            record.delete()
            return IdempotencyRecord.objects.create(
                principal=principal,
                key=key,
                fingerprint=fingerprint,
                method=method,
                path=path[:500],
                expires_at=now + lease,
            )
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key."
        )
    if record.state == IdempotencyRecord.State.IN_FLIGHT:
        # Usually the first request answers within a second; if it died, its lease ends
        # within `lease`. Ask again soon, and never later than the lease's end.
        lease_left_s = math.ceil((record.expires_at - now).total_seconds())
        raise IdempotencyKeyInFlight(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            retry_after_s=max(1, min(IN_FLIGHT_RETRY_AFTER_S, lease_left_s)),
        )
    return record


def _claim_new_idempotency_key(
    *, principal: str, key: str, fingerprint: str, method: str, path: str, now, expires_at
) -> IdempotencyRecord | None:
    """Insert the in-flight claim unless the key exists: the new record, or None. One
    round trip (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, PostgreSQL and SQLite)."""
    meta = IdempotencyRecord._meta
    quote = connection.ops.quote_name
    columns = ["principal", "key", "fingerprint", "method", "path", "state"]
    columns += ["created_at", "expires_at"]
    values = [principal, key, fingerprint, method, path, IdempotencyRecord.State.IN_FLIGHT]
    field = meta.get_field("created_at")
    values += [
        field.get_db_prep_value(now, connection),
        field.get_db_prep_value(expires_at, connection),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({', '.join(['%s'] * len(columns))}) "
            f"ON CONFLICT ({quote('principal')}, {quote('key')}) DO NOTHING "
            f"RETURNING {quote('id')}",
            values,
        )
        row = cursor.fetchone()
    if row is None:
        return None
    record = IdempotencyRecord(
        pk=row[0],
        principal=principal,
        key=key,
        fingerprint=fingerprint,
        method=method,
        path=path,
        state=IdempotencyRecord.State.IN_FLIGHT,
        created_at=now,
        expires_at=expires_at,
    )
    record._state.adding = False
    return record


# What a 409 in flight tells the caller to wait, in seconds, at most.
IN_FLIGHT_RETRY_AFTER_S = 2


def complete_idempotent_request(*, record: IdempotencyRecord, status: int, body: Any) -> None:
    """Store the answer, kept for `IDEMPOTENCY_KEY_TTL_HOURS`. A claim whose lease ran out
    and was taken over (another row now) is left alone: the new claim owns the key."""
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_FLIGHT).update(
        state=IdempotencyRecord.State.COMPLETED,
        response_status=status,
        response_body=json.loads(json.dumps(body, cls=DjangoJSONEncoder)),
        expires_at=timezone.now() + timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS),
    )


def release_idempotent_request(*, record: IdempotencyRecord) -> None:
    """Forget a claim whose request failed before it could answer, so a retry runs it."""
    IdempotencyRecord.objects.filter(pk=record.pk, state=IdempotencyRecord.State.IN_FLIGHT).delete()


def purge_expired_idempotency_records() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
