"""How a stored file reaches a browser or a robot: one decision, made here.

Where the default storage can sign URLs (S3 and S3-compatible stores through django-storages),
a download or replay is answered with a 302 to a presigned URL that lives
`PG_S3_URL_EXPIRY_S` seconds (300 by default), so gigabytes never pass through a Django
process; the Content-Disposition and Content-Type the store answers with are signed into the
URL. Where it cannot (FileSystemStorage), Django streams the file (FileResponse).

Callers check access first; nothing here checks who asks. A presigned URL is a bearer token
for one object until it expires: it is handed only to someone who passed the access check,
and it is never cached (`Cache-Control: no-store` on the redirect).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from django.core.files.storage import storages
from django.http import FileResponse, HttpResponse, HttpResponseRedirect

FALLBACK_FILENAME = "download"
MAX_FILENAME_CHARS = 150
# What may stay in a filename: letters, digits, dot, dash, underscore. Everything else (spaces,
# quotes, semicolons, slashes, control and bidirectional characters) becomes "_".
_UNSAFE_FILENAME_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def download_filename(name: str) -> str:
    """`name` made safe for a Content-Disposition header and any file system: ASCII letters,
    digits and `._-` only, accents folded (é -> e), no control or bidirectional characters
    (U+202E cannot flip `gpj.exe` into `exe.jpg`), no leading dot, at most 150 characters."""
    folded = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c for c in folded if c.isascii() and c.isprintable())
    safe = _UNSAFE_FILENAME_RUN.sub("_", ascii_only).strip("._")
    if len(safe) > MAX_FILENAME_CHARS:
        stem, dot, suffix = safe.rpartition(".")
        if dot and len(suffix) <= 10:
            safe = stem[: MAX_FILENAME_CHARS - len(suffix) - 1] + "." + suffix
        else:
            safe = safe[:MAX_FILENAME_CHARS]
    return safe or FALLBACK_FILENAME


def _file_storage():
    return storages["default"]


def can_sign_urls(storage=None) -> bool:
    """Whether `storage` (the default storage if None) hands out presigned URLs: the S3
    backend with signed query strings, addressed at the store itself (a custom domain, a
    CDN, would answer unsigned URLs)."""
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages is a runtime dependency; be safe all the same
        return False
    storage = storage if storage is not None else _file_storage()
    return (
        isinstance(storage, S3Storage)
        and bool(storage.querystring_auth)
        and not storage.custom_domain
    )


def presigned_url(
    key: str,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    as_attachment: bool = True,
) -> str | None:
    """A short-lived GET URL for the stored object `key` on the default storage, or None
    when the storage cannot sign. `filename` (sanitized) goes into the Content-Disposition
    the store answers with; `content_type` into its Content-Type. Signing is computed
    locally: no request to the store."""
    storage = _file_storage()
    if not can_sign_urls(storage):
        return None
    parameters = {}
    if filename is not None:
        disposition = "attachment" if as_attachment else "inline"
        parameters["ResponseContentDisposition"] = (
            f'{disposition}; filename="{download_filename(filename)}"'
        )
    if content_type is not None:
        parameters["ResponseContentType"] = content_type
    return storage.url(key, parameters=parameters)


def presigned_url_origin() -> str | None:
    """The origin (`https://bucket.s3.region.amazonaws.com`) presigned URLs point at, for a
    Content-Security-Policy `connect-src`; None when the storage cannot sign."""
    url = presigned_url("origin-probe")
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def serve_file(
    key: str,
    *,
    filename: str,
    content_type: str | None = None,
    as_attachment: bool = True,
) -> HttpResponse:
    """Answer a request for the stored object `key`: a 302 to a presigned URL where the store
    can sign, else the file streamed by Django. Check access before calling this.

    `filename` is sanitized (`download_filename`) in both cases. Raises FileNotFoundError
    when streaming a key that is not stored (a presigned URL to a missing key gets the
    store's 404 instead: checking first would cost a request to the store)."""
    url = presigned_url(
        key, filename=filename, content_type=content_type, as_attachment=as_attachment
    )
    if url is not None:
        response = HttpResponseRedirect(url)
        # The URL expires in minutes and is a bearer token: no browser or proxy keeps it.
        response["Cache-Control"] = "no-store"
        return response
    return FileResponse(
        _file_storage().open(key, "rb"),
        as_attachment=as_attachment,
        filename=download_filename(filename),
        content_type=content_type,
    )
