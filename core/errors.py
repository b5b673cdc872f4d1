"""Domain errors. Services raise these; the API's one exception handler turns each into a
4xx answer `{"error": code, "detail": message, "fields": {...}}`."""


class DomainError(Exception):
    """Base: `code` is a stable machine-readable slug, `status` the HTTP status it maps to."""

    code = "domain_error"
    status = 400

    def __init__(self, detail: str, *, fields: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or {}


class InvalidInput(DomainError):
    code = "invalid"
    status = 400


class NotPermitted(DomainError):
    code = "permission_denied"
    status = 403


class Conflict(DomainError):
    code = "conflict"
    status = 409


class TaskVersionLocked(Conflict):
    code = "task_version_locked"


class StillReferenced(Conflict):
    code = "still_referenced"


class IdempotencyKeyInFlight(Conflict):
    """The first request with this key still holds it; `retry_after_s` says when to ask
    again (the API sends it as `Retry-After`)."""

    code = "idempotency_key_in_flight"

    def __init__(self, detail: str, *, retry_after_s: int = 1, fields: dict | None = None):
        super().__init__(detail, fields=fields)
        self.retry_after_s = retry_after_s


class IdempotencyKeyReused(DomainError):
    code = "idempotency_key_reused"
    status = 422
