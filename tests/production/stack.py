"""The rest of the production shape, as processes: a local S3 server (moto's server mode) and
gunicorn instances started from the repository's own settings (DEBUG off). Used by the
production-shape test and by `bench/`; plain classes, no pytest."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests

from tests.production.conftest import REPO, spare_port, wait_for

S3_ACCESS_KEY_ID = "pg-prod-access-key"
S3_SECRET_ACCESS_KEY = "pg-prod-secret-key"
S3_REGION = "us-east-1"


class MotoS3Server:
    """`moto_server` on a loopback port with one bucket; `environment()` gives the PG_S3_*
    variables that put the platform's files on it."""

    def __init__(self, log_path: Path, bucket: str = "proving-ground"):
        self.log_path = log_path
        self.bucket = bucket
        self.port = spare_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3Server:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1"]
                + ["-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, timeout_s=60, what="the S3 server to answer")
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(self.endpoint_url, timeout=2).status_code < 500
        except requests.RequestException:
            return False

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY_ID,
            aws_secret_access_key=S3_SECRET_ACCESS_KEY,
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = (
            self.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def environment(self) -> dict[str, str]:
        return {
            "PG_FILE_STORAGE_BACKEND": "storages.backends.s3.S3Storage",
            "PG_S3_BUCKET": self.bucket,
            "PG_S3_ENDPOINT_URL": self.endpoint_url,
            "PG_S3_REGION": S3_REGION,
            "PG_S3_ACCESS_KEY_ID": S3_ACCESS_KEY_ID,
            "PG_S3_SECRET_ACCESS_KEY": S3_SECRET_ACCESS_KEY,
            "PG_S3_ADDRESSING_STYLE": "path",
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class Gunicorn:
    """`gunicorn core.wsgi` on a loopback port, as docs/deploy.md starts it."""

    def __init__(self, env: dict[str, str], log_path: Path, *, workers: int = 2):
        self.env = env
        self.log_path = log_path
        self.workers = workers
        self.port = spare_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Gunicorn:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("gunicorn")),
                    "core.wsgi",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--timeout",
                    "120",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, timeout_s=120, what=f"gunicorn on {self.port}")
        return self

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.output()[-4000:]}")
        try:
            answer = requests.get(
                f"{self.url}/api/v1/version",
                headers={"X-Forwarded-Proto": "https"},  # as the TLS proxy says
                timeout=5,
            )
            return answer.status_code == 200
        except requests.RequestException:
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
