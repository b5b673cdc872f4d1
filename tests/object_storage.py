"""A local S3 server for tests: moto's server mode on a loopback port, in this process.

`s3_server` (session) starts it once per test process (each xdist worker has its own) and
creates a bucket. `s3_storage` (function) points Django's default storage at that bucket, as
`PG_FILE_STORAGE_BACKEND=storages.backends.s3.S3Storage` does in production, and empties the
bucket afterwards. Django's storage cache (`storages`, `default_storage`) is reset by the
`setting_changed` signal that the `settings` fixture sends for STORAGES.

moto does not check presigned URLs (it serves any query string), so the server here puts a
small SigV4 query-string check in front of it: a GET or HEAD carrying `X-Amz-Signature` is
refused with 403 when the signature does not match the test credentials or `X-Amz-Expires`
has passed, as S3 refuses it. Requests signed in the `Authorization` header (boto3's own
calls) pass through unchecked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

ACCESS_KEY_ID = "pg-test-access-key"
SECRET_ACCESS_KEY = "pg-test-secret-key"
REGION = "us-east-1"
BUCKET = "pg-test-files"
# Bucket CORS as docs/storage.md recommends (the Rerun viewer fetches `.rrd` cross-origin).
TEST_SITE_ORIGIN = "http://testserver"
CORS_RULES = [
    {
        "AllowedOrigins": [TEST_SITE_ORIGIN],
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedHeaders": ["Range"],
        "ExposeHeaders": ["Content-Length", "Content-Range", "ETag"],
        "MaxAgeSeconds": 3000,
    }
]


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    region: str
    access_key_id: str
    secret_access_key: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def storage_options(self) -> dict:
        """The S3Storage OPTIONS that core/settings.py builds from the PG_S3_* variables."""
        return {
            "bucket_name": self.bucket,
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "access_key": self.access_key_id,
            "secret_key": self.secret_access_key,
            "addressing_style": "path",
            "signature_version": "s3v4",
            "querystring_auth": True,
            "querystring_expire": 300,
            "default_acl": None,
            "file_overwrite": False,
        }

    def keys(self) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def empty(self) -> None:
        client = self.client()
        keys = self.keys()
        for start in range(0, len(keys), 1000):
            client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
            )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def presigned_url_refusal(environ, *, secret_access_key: str, now: dt.datetime) -> str | None:
    """Why S3 would refuse this query-string-signed (presigned) request, or None if it
    would not: AWS Signature Version 4, `UNSIGNED-PAYLOAD`, as botocore signs `get_object`."""
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    params = dict(query)
    try:
        signature = params["X-Amz-Signature"]
        credential = params["X-Amz-Credential"]
        amz_date = params["X-Amz-Date"]
        expires_s = int(params["X-Amz-Expires"])
        signed_headers = params["X-Amz-SignedHeaders"].split(";")
    except (KeyError, ValueError):
        return "AuthorizationQueryParametersError"
    signed_at = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    if now > signed_at + dt.timedelta(seconds=expires_s):
        return "Request has expired"
    _key_id, date, region, service, _terminator = credential.split("/")
    raw_path = urlsplit(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "").path
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(query)
        if k != "X-Amz-Signature"
    )
    headers = {
        "host": environ.get("HTTP_HOST", ""),
        **{
            name[5:].lower().replace("_", "-"): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        },
    }
    canonical_request = "\n".join(
        [
            environ["REQUEST_METHOD"],
            raw_path,
            canonical_query,
            "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed_headers),
            ";".join(signed_headers),
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret_access_key).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "SignatureDoesNotMatch"
    return None


class _PresignedUrlCheck:
    """WSGI middleware: refuse presigned requests whose signature is wrong or expired."""

    def __init__(self, app, secret_access_key: str):
        self.app = app
        self.secret_access_key = secret_access_key

    def __call__(self, environ, start_response):
        if "X-Amz-Signature=" in environ.get("QUERY_STRING", ""):
            refusal = presigned_url_refusal(
                environ, secret_access_key=self.secret_access_key, now=dt.datetime.now(dt.UTC)
            )
            if refusal is not None:
                body = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                    f"<Message>{refusal}</Message></Error>"
                ).encode()
                start_response(
                    "403 Forbidden",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
                )
                return [body]
        return self.app(environ, start_response)


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 (a free port), with a bucket, for the whole run."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class QuietRequestHandler(MotoRequestHandler):
        def log_request(self, *args, **kwargs):  # one line per request drowns failures
            pass

    app = _PresignedUrlCheck(
        DomainDispatcherApplication(create_backend_app), secret_access_key=SECRET_ACCESS_KEY
    )
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    s3 = S3Server(
        endpoint_url=f"http://{host}:{port}",
        bucket=BUCKET,
        region=REGION,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": CORS_RULES})
    try:
        yield s3
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def s3_storage(s3_server, settings):
    """Django's default storage on the local S3 server's bucket for this test; the bucket is
    emptied afterwards. Yields the `S3Server` (its `client()`, `keys()`, `bucket`)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": s3_server.storage_options(),
        },
    }
    try:
        yield s3_server
    finally:
        s3_server.empty()
