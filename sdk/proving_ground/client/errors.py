"""The errors the robot client raises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

# --- Errors ---------------------------------------------------------------------------------


class ProvingGroundError(Exception):
    """A request failed for good. ``status`` is the HTTP status (None when no answer came
    back at all), ``error`` the server's machine-readable code (``invalid``, ``not_found``,
    ``session_closed``, ...; ``unreachable`` when the server never answered), ``detail`` its
    human-readable message and ``fields`` its per-field messages."""

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        error: str = "error",
        fields: Mapping[str, Any] | None = None,
        request: str = "",
    ):
        self.status = status
        self.error = error
        self.detail = detail
        self.fields = dict(fields or {})
        self.request = request
        where = f"{request}: " if request else ""
        code = f"{status} {error}" if status is not None else error
        super().__init__(f"{where}{code}: {detail}")

    @classmethod
    def from_response(cls, response: requests.Response) -> ProvingGroundError:
        """Build from the server's error body ``{"error", "detail", "fields"}``; a body that
        is not ours (a gateway's HTML page) becomes ``http_<status>`` with its first line."""
        request = f"{response.request.method} {response.request.path_url}"
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            return cls(
                str(body.get("detail", "")),
                status=response.status_code,
                error=str(body["error"]),
                fields=body.get("fields") if isinstance(body.get("fields"), dict) else None,
                request=request,
            )
        text = (response.text or response.reason or "").strip().splitlines()
        return cls(
            text[0][:200] if text else "",
            status=response.status_code,
            error=f"http_{response.status_code}",
            request=request,
        )


class ClientTooOldError(ProvingGroundError):
    """The server no longer supports this client version: upgrade the client."""


class ProcessingTimeout(ProvingGroundError, TimeoutError):
    """`ProvingGroundClient.wait_until_processed` gave up; ``state`` is the last one seen."""

    def __init__(self, detail: str, *, state: str | None):
        super().__init__(detail, error="timeout")
        self.state = state
