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
from urllib.parse import quote, urlsplit

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
    safe = _UNSAFE_FILENAME_RUN.sub("_", ascii_only).strip("._-")
    if len(safe) > MAX_FILENAME_CHARS:
        stem, dot, suffix = safe.rpartition(".")
        if dot and len(suffix) <= 10:
            safe = stem[: MAX_FILENAME_CHARS - len(suffix) - 1] + "." + suffix
        else:
            safe = safe[:MAX_FILENAME_CHARS]
    return safe or FALLBACK_FILENAME


def _utf8_filename(name: str) -> str:
    """`name` with letters of any script kept (for `filename*`), and only `._-` beside
    them: no control, format (bidirectional) or path characters, at most 150 characters."""
    kept = "".join(
        c if (c.isalnum() or c in "._-") and unicodedata.category(c)[0] != "C" else "_"
        for c in unicodedata.normalize("NFC", name)
    )
    return re.sub(r"_+", "_", kept).strip("._-")[:MAX_FILENAME_CHARS]


def content_disposition(filename: str, *, as_attachment: bool = True) -> str:
    """A Content-Disposition header (RFC 6266) for `filename`: `filename="..."` is always
    the ASCII name of `download_filename`; when `filename` holds letters ASCII cannot spell
    (a Chinese or Greek view name), `filename*=UTF-8''...` (RFC 8187, percent-encoded)
    carries them too, and browsers prefer it."""
    disposition = "attachment" if as_attachment else "inline"
    ascii_name = download_filename(filename)
    header = f'{disposition}; filename="{ascii_name}"'
    utf8_name = _utf8_filename(filename)
    if utf8_name and utf8_name != ascii_name and not utf8_name.isascii():
        header += f"; filename*=UTF-8''{quote(utf8_name, safe='')}"
    return header


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
        parameters["ResponseContentDisposition"] = content_disposition(
            filename, as_attachment=as_attachment
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

    `filename` becomes the same Content-Disposition (`content_disposition`) in both cases.
    Raises FileNotFoundError when streaming a key that is not stored (a presigned URL to a
    missing key gets the store's 404 instead: checking first would cost a request to the
    store)."""
    url = presigned_url(
        key, filename=filename, content_type=content_type, as_attachment=as_attachment
    )
    if url is not None:
        response = HttpResponseRedirect(url)
        # The URL expires in minutes and is a bearer token: no browser or proxy keeps it.
        response["Cache-Control"] = "no-store"
        return response
    response = FileResponse(
        _file_storage().open(key, "rb"),
        as_attachment=as_attachment,
        filename=download_filename(filename),
        content_type=content_type,
    )
    response["Content-Disposition"] = content_disposition(filename, as_attachment=as_attachment)
    return response
