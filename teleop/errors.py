"""Recording's domain errors (see core.errors for the base and the API mapping)."""

from core.errors import Conflict, DomainError, InvalidInput


class SessionClosed(Conflict):
    code = "session_closed"


class SessionNotFound(DomainError):
    code = "not_found"
    status = 404


class CheckDisagrees(Conflict):
    """A label the task's success check disagrees with, not confirmed."""

    code = "check_disagrees"


class EmbodimentNotAllowed(InvalidInput):
    code = "embodiment_not_allowed"


class EpisodeIdConflict(Conflict):
    code = "episode_id_conflict"


class UploadOffsetMismatch(Conflict):
    code = "upload_offset_mismatch"


class UploadBusy(Conflict):
    """Another request holds the upload's chunk lease; `retry_after_s` says when it ends."""

    code = "upload_busy"

    def __init__(self, detail: str, *, retry_after_s: int = 1, fields: dict | None = None):
        super().__init__(detail, fields=fields)
        self.retry_after_s = retry_after_s


class UploadNotActive(Conflict):
    code = "upload_not_active"


class UploadExpired(DomainError):
    code = "upload_expired"
    status = 410


class ChunkTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


class ChecksumMismatch(DomainError):
    """tus checksum extension: 460 Checksum Mismatch; nothing of the chunk is kept."""

    code = "checksum_mismatch"
    status = 460


class ConsentRefused(Conflict):
    """Episodes whose operators' consent or licence does not cover a use (an export)."""

    code = "consent_refused"
