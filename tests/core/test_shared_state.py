"""State every web process must share: throttle counters, sign-in failures, and e-mail out."""

import json
import os
import random
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client

import core.settings as configured
from tests.core import factories

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_cache_is_the_database_one_that_every_process_shares():
    backend = configured.CACHES["default"]["BACKEND"]
    assert backend == "django.core.cache.backends.db.DatabaseCache"


def _in_another_process(code: str, database_url: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "core.settings"}
    env.pop("PG_CACHE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


@pytest.mark.slow
@pytest.mark.postgres_only
def test_two_processes_count_one_throttle(transactional_db, settings):
    """Two separate Python processes, each with the repository's settings, count requests
    against the same rate: the second sees the first's requests."""
    settings.CACHES = configured.CACHES  # the tests' own in-memory cache made no table
    call_command("createcachetable")
    params = connection.settings_dict
    database_url = (
        f"postgres://{params['USER']}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
        f"/{params['NAME']}"
    )
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    count = """
from django.test import RequestFactory
from rest_framework.request import Request
from core.api.throttling import PrincipalRateThrottle
PrincipalRateThrottle.THROTTLE_RATES = {"anon": "3/min"}
allowed = []
for _ in range(2):
    request = Request(RequestFactory().get("/api/v1/version", REMOTE_ADDR="{address}"))
    allowed.append(PrincipalRateThrottle().allow_request(request, None))
print(__import__("json").dumps(allowed))
"""
    count = count.replace("{address}", address)
    assert json.loads(_in_another_process(count, database_url)) == [True, True]
    assert json.loads(_in_another_process(count, database_url)) == [True, False]


@pytest.mark.django_db
def test_sign_in_is_locked_after_five_wrong_passwords_even_with_the_right_one(settings):
    user = factories.make_user()
    user.set_password("right-password")
    user.save()
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        wrong = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
        assert wrong.status_code in (200, 429)
    locked = client.post(
        "/accounts/login/", {"username": user.username, "password": "right-password"}
    )
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page and "Reset it by e-mail" in page
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_admin_sign_in_is_locked_the_same_way(settings):
    user = factories.make_user()
    user.is_staff = True
    user.set_password("right-password")
    user.save()
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": user.username, "password": "wrong"})
    locked = client.post("/admin/login/", {"username": user.username, "password": "right-password"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_right_password_after_a_few_wrong_ones_signs_in():
    user = factories.make_user()
    user.set_password("right-password")
    user.save()
    client = Client()
    for _ in range(2):
        client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    signed_in = client.post(
        "/accounts/login/", {"username": user.username, "password": "right-password"}
    )
    assert signed_in.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.django_db
def test_password_reset_sends_a_mail_with_the_link(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "Proving Ground <pg@example.org>"
    user = factories.make_user()
    user.email = "rita@example.org"
    user.save()
    response = Client().post("/accounts/password_reset/", {"email": "rita@example.org"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["rita@example.org"] and sent.from_email == "Proving Ground <pg@example.org>"
    assert "/accounts/reset/" in sent.body


class _SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP to take one message: what a real mail server sees of ours."""

    received: list[bytes] = []

    def handle(self):
        self.wfile.write(b"220 sink ready\r\n")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                message = b""
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    message += data
                self.received.append(message)
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:  # EHLO, HELO, MAIL, RCPT, RSET, NOOP
                self.wfile.write(b"250 ok\r\n")


@pytest.mark.django_db
def test_password_reset_mail_reaches_an_smtp_server_named_by_email_url(settings):
    import environ

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpSink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        for name, value in environ.Env.email_url_config(f"smtp://127.0.0.1:{port}").items():
            setattr(settings, name, value)
        user = factories.make_user()
        user.email = "rita@example.org"
        user.save()
        _SmtpSink.received.clear()
        response = Client().post("/accounts/password_reset/", {"email": "rita@example.org"})
        assert response.status_code == 302
    finally:
        server.shutdown()
        server.server_close()
    assert len(_SmtpSink.received) == 1
    message = _SmtpSink.received[0].decode()
    assert "To: rita@example.org" in message and "/accounts/reset/" in message
