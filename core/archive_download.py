"""Sending an access archive once: the file streamed by Django (never a presigned URL, which
could be fetched again until it expires), then deleted from the storage when the response
is closed (docs/privacy.md, "Access and portability")."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.http import FileResponse

from core import access_archive
from core.models import DataRequest
from core.services import data_requests


class _DeletedWhenClosed:
    """The stored archive, read in blocks; closing it deletes the file and its key."""

    def __init__(self, request: DataRequest):
        self._request = request
        self._file = default_storage.open(request.file, "rb")

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            data_requests.delete_archive(self._request)


def archive_response(request: DataRequest) -> FileResponse:
    """The answer to a download `data_requests.claim_download` allowed."""
    response = FileResponse(
        _DeletedWhenClosed(request),
        as_attachment=True,
        filename=access_archive.archive_filename(request.operator),
        content_type="application/zip",
    )
    if request.size_bytes is not None:
        response["Content-Length"] = str(request.size_bytes)
    response["X-Checksum-Sha256"] = request.checksum
    response["Cache-Control"] = "no-store"
    return response
