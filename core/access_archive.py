"""The access archive `pg-access/1`: everything the platform holds about one operator, as a
zip of JSON and CSV with a README (docs/privacy.md, "Access and portability").

Core cannot read the recording and evaluation apps' tables (dependencies run one way), so
each app contributes its sections: an `access_archive` module in the app registers functions
with `@archive_section`, found by `sections()` (Django's autodiscovery, as `core.jobs` finds
each app's `jobs`). A section declares its tables (name, meaning of each column) and, given
the operator, returns their rows, and files to add when the person asked for them.

Rows hold the operator's own data and nobody else's: where a record names another person
(who opened a session, who discarded an episode, who acted in an audit event) the archive
says "another person"; it says "you" for the operator's own account.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from core.models import AuditEvent, DataRequest, Membership, Operator, OperatorIdentity

SCHEMA = "pg-access/1"
YOU = "you"
ANOTHER_PERSON = "another person"


@dataclass(frozen=True)
class Table:
    """One table of the archive: `<name>.csv`, and `tables.<name>` in `data.json`."""

    name: str
    description: str
    columns: dict[str, str]  # column -> what it holds


@dataclass
class SectionData:
    """A section's rows per table, and stored files to add: (name in the archive, storage
    key)."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    order: int
    name: str
    tables: tuple[Table, ...]
    read: Callable[..., SectionData]


_sections: list[Section] = []


def archive_section(*tables: Table, order: int) -> Callable:
    """Register `read(operator, *, user, include_files) -> SectionData` as a section holding
    `tables` (`order` places it in the archive and its README). `user` is the operator's
    account, or None."""

    def register(read: Callable[..., SectionData]) -> Callable[..., SectionData]:
        name = f"{read.__module__}.{read.__name__}"
        if all(s.name != name for s in _sections):
            _sections.append(Section(order, name, tables, read))
        return read

    return register


def sections() -> list[Section]:
    autodiscover_modules("access_archive")
    return sorted(_sections, key=lambda s: (s.order, s.name))


def who(label: str, user) -> str:
    """An actor label (`user:olga`, `robot:arm-1`, `system`) as the archive shows it: the
    operator's own account is "you", any other person "another person"; robots and the
    system are not people and keep their label."""
    if user is not None and label == f"user:{user.get_username()}":
        return YOU
    if label.startswith("user:"):
        return ANOTHER_PERSON
    return label


# --- Core's sections -------------------------------------------------------------------------

_OPERATOR = Table(
    "operator",
    "The pseudonym the platform knows you by, in one team.",
    {
        "code": "the operator code (pseudonym) shown wherever your work appears",
        "team": "the team's name",
        "active": "whether the code may still be used for new sessions",
        "created_at": "when the code was created (ISO 8601, UTC)",
    },
)
_IDENTITY = Table(
    "identity",
    "The identity record behind the pseudonym, read only by the team's admins (empty when "
    "the team holds none).",
    {
        "full_name": "your name as the team recorded it",
        "email": "your e-mail address as the team recorded it",
        "consent_version": "the version of the consent you gave",
        "consent_given_at": "when you gave it",
        "consent_withdrawn_at": "when you withdrew it (empty if you did not)",
        "created_at": "when the record was created",
        "updated_at": "when it last changed",
    },
)
_ACCOUNT = Table(
    "account",
    "The user account you sign in with, when the operator code is linked to one.",
    {
        "username": "your sign-in name",
        "first_name": "first name on the account",
        "last_name": "last name on the account",
        "email": "e-mail address on the account",
        "date_joined": "when the account was created",
        "last_login": "your last sign-in",
        "is_active": "whether the account may sign in",
    },
)
_MEMBERSHIPS = Table(
    "memberships",
    "Your account's roles in teams.",
    {"team": "the team's name", "role": "admin, operator or researcher", "created_at": "since"},
)
_AUDIT = Table(
    "audit_events",
    "The audit trail's events about you (your operator code, identity, account, data "
    "requests) and those your account caused. Snapshots are included for events about you; "
    "an event you caused on another object names the object only (what it holds is in the "
    "other tables when it is yours).",
    {
        "created_at": "when",
        "relation": "about_you or by_you",
        "actor": '"you", "another person", a robot (robot:<name>) or "system"',
        "action": "create, update, delete, revoke, lock or erase",
        "object_type": "the kind of object (app_label.model)",
        "object_id": "its id",
        "before": "for events about you: the object before (JSON), else empty",
        "after": "for events about you: the object after (JSON), else empty",
    },
)
_REQUESTS = Table(
    "data_requests",
    "Requests for your data (this one included), and who asked.",
    {
        "id": "the request's id",
        "kind": "access",
        "requested_by": '"you" or "another person" (an admin of your team)',
        "state": "queued, running, ready, downloaded, expired or failed",
        "include_files": "whether episode files were asked for",
        "created_at": "when it was asked",
        "expires_at": "when its archive is deleted if not downloaded",
        "downloaded_at": "when it was downloaded",
    },
)

# The objects whose audit events are "about" the operator (snapshots included).
_ABOUT_TYPES = ("core.operator", "core.operatoridentity", "auth.user", "core.datarequest")


@archive_section(_OPERATOR, _IDENTITY, _ACCOUNT, _MEMBERSHIPS, _REQUESTS, _AUDIT, order=0)
def read_core(operator: Operator, *, user, include_files: bool) -> SectionData:
    data = SectionData()
    data.rows["operator"] = [
        {
            "code": operator.code,
            "team": operator.team.name,
            "active": operator.active,
            "created_at": operator.created_at,
        }
    ]
    identity = OperatorIdentity.objects.filter(operator=operator).first()
    data.rows["identity"] = (
        []
        if identity is None
        else [
            {name: getattr(identity, name) for name in _IDENTITY.columns},
        ]
    )
    data.rows["account"] = (
        [] if user is None else [{name: getattr(user, name) for name in _ACCOUNT.columns}]
    )
    data.rows["memberships"] = [
        {"team": m.team.name, "role": m.role, "created_at": m.created_at}
        for m in Membership.objects.filter(user=user).select_related("team")
    ]
    requests = list(DataRequest.objects.filter(operator=operator).order_by("created_at"))
    data.rows["data_requests"] = [
        {
            "id": r.pk,
            "kind": r.kind,
            "requested_by": YOU
            if user is not None and r.requested_by_id == user.pk
            else ANOTHER_PERSON,
            "state": r.state,
            "include_files": r.include_files,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "downloaded_at": r.downloaded_at,
        }
        for r in requests
    ]
    about = {
        "core.operator": [str(operator.pk)],
        "core.operatoridentity": [str(identity.pk)] if identity is not None else [],
        "auth.user": [str(user.pk)] if user is not None else [],
        "core.datarequest": [str(r.pk) for r in requests],
    }
    events = []
    for object_type in _ABOUT_TYPES:
        if about[object_type]:
            events += AuditEvent.objects.filter(
                object_type=object_type, object_id__in=about[object_type]
            )
    seen = {e.pk for e in events}
    if user is not None:
        events += [e for e in AuditEvent.objects.filter(actor_user=user) if e.pk not in seen]
    events.sort(key=lambda e: (e.created_at, e.pk))
    data.rows["audit_events"] = [
        {
            "created_at": e.created_at,
            "relation": "about_you" if e.pk in seen else "by_you",
            "actor": YOU
            if user is not None and e.actor_user_id == user.pk
            else who(e.actor_label, user),
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "before": e.before if e.pk in seen else None,
            "after": e.after if e.pk in seen else None,
        }
        for e in events
    ]
    return data


# --- Writing the zip -------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A value for CSV: datetimes in ISO 8601, lists and objects as JSON, None empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True)
    return value


def _csv(table: Table, rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(table.columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in table.columns})
    return out.getvalue().encode()


def readme(tables: Iterable[Table], *, operator_code: str, generated_at, files: bool) -> str:
    """The archive's README.md: what it is and what every column holds."""
    lines = [
        f"# What Proving Ground holds about operator {operator_code}",
        "",
        f"Schema `{SCHEMA}`, generated {generated_at.isoformat()}.",
        "",
        "Each table is here twice: `<table>.csv` (UTF-8, a header row, one row per record;",
        "lists and objects as JSON, times in ISO 8601 UTC, empty for none) and under",
        "`tables.<table>` in `data.json` (the same rows as JSON objects). `manifest.json`",
        "lists every file with its SHA-256 and row count. Other people appear as",
        '"another person"; your own account as "you".',
        "",
    ]
    if files:
        lines += [
            "Your episode files are under `files/episodes/<episode id>.h5` (HDF5,",
            "`pg-episode/1`); camera frames can show your face.",
            "",
        ]
    for table in tables:
        lines += [
            f"## {table.name}",
            "",
            table.description,
            "",
            "| column | meaning |",
            "|---|---|",
        ]
        lines += [f"| `{name}` | {meaning} |" for name, meaning in table.columns.items()]
        lines.append("")
    return "\n".join(lines)


def write_archive(
    operator: Operator,
    out: Path,
    *,
    include_files: bool,
    progress: Callable[[int, str], None] = lambda percent, step: None,
) -> tuple[int, str]:
    """Write the archive of `operator` to the zip file `out`; `progress(percent, step)` is
    called as each section is read. Returns (size in bytes, SHA-256 of the zip)."""
    user = operator.user
    generated_at = timezone.now()
    found = sections()
    tables: list[Table] = []
    rows: dict[str, list[dict]] = {}
    files: list[tuple[str, str]] = []
    for index, section in enumerate(found):
        progress(
            int(80 * index / len(found)), f"reading {', '.join(t.name for t in section.tables)}"
        )
        data = section.read(operator, user=user, include_files=include_files)
        tables += section.tables
        for table in section.tables:
            rows[table.name] = data.rows.get(table.name, [])
        if include_files:
            files += data.files
    root = f"pg-access-{operator.code}"
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": generated_at,
        "operator": operator.code,
        "include_files": include_files,
        "tables": {},
        "files": {},
    }
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def put(name: str, content: bytes) -> None:
            archive.writestr(f"{root}/{name}", content)
            manifest["files"][name] = {"sha256": hashlib.sha256(content).hexdigest()}

        put(
            "README.md",
            readme(
                tables, operator_code=operator.code, generated_at=generated_at, files=include_files
            ).encode(),
        )
        for table in tables:
            put(f"{table.name}.csv", _csv(table, rows[table.name]))
            manifest["tables"][table.name] = {
                "rows": len(rows[table.name]),
                "columns": list(table.columns),
            }
        document = {"schema": SCHEMA, "operator": operator.code, "tables": rows}
        put("data.json", json.dumps(document, cls=DjangoJSONEncoder, indent=1).encode())
        for index, (name, key) in enumerate(files):
            progress(80 + int(15 * index / len(files)), f"adding file {index + 1} of {len(files)}")
            digest = hashlib.sha256()
            with (
                default_storage.open(key, "rb") as source,
                archive.open(f"{root}/{name}", "w", force_zip64=True) as target,
            ):
                while block := source.read(1024 * 1024):
                    digest.update(block)
                    target.write(block)
            manifest["files"][name] = {"sha256": digest.hexdigest()}
        archive.writestr(
            f"{root}/manifest.json",
            json.dumps(manifest, cls=DjangoJSONEncoder, indent=1, sort_keys=True),
        )
    digest = hashlib.sha256()
    with open(out, "rb") as f:
        while block := f.read(1024 * 1024):
            digest.update(block)
    return out.stat().st_size, digest.hexdigest()


def archive_filename(operator: Operator) -> str:
    return f"pg-access-{operator.code}.zip"
