"""What personal data the platform holds: every model field, classified (docs/privacy.md).

Teleoperators are people. Their identity (name, e-mail, account) lives in few places; the
rest of the platform knows them by a pseudonym (the operator code). This registry lists
every stored field of every model with one of four kinds, so that what may flow where is a
rule, not a guess:

- ``IDENTITY``: names a person or leads straight to one: a name, an e-mail address, a
  username or user account link, a label such as ``user:olga``, a snapshot that can hold any
  of those. Stays in the team's own admin pages and in the person's access archive; never in
  public answers, exports, recordings or logs; erased on request.
- ``PSEUDONYMOUS``: about a person only through the operator pseudonym: the operator link,
  its code, and what a person recorded (camera frames can show a face: blurred on export on
  request). Flows within the team and into exports under the pseudonym; erasing the
  identity leaves it unlinkable to the person.
- ``OPERATIONAL``: records of work (times, outcomes, quality figures, free-text notes) that
  become personal only joined with a pseudonym or an identity. Flows with the object.
- ``NONE``: no personal data (catalog content, machines, counters, checksums).

`tests/core/test_privacy.py` fails when a model gains a field that is not classified here,
or when an entry names a field that no longer exists.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    IDENTITY = "identity"
    PSEUDONYMOUS = "pseudonymous"
    OPERATIONAL = "operational"
    NONE = "none"


IDENTITY, PSEUDONYMOUS, OPERATIONAL, NONE = Kind

# Fields every team-owned catalog model has (visibility and sharing: no personal data).
_CATALOG = {NONE: ("id", "team", "visibility", "shared_with", "created_at")}


def _model(*parts: dict[Kind, tuple[str, ...]]) -> dict[str, Kind]:
    fields: dict[str, Kind] = {}
    for part in parts:
        for kind, names in part.items():
            for name in names:
                if name in fields:
                    raise ValueError(f"{name} classified twice")
                fields[name] = kind
    return fields


# "app_label.model_name" -> {field: kind}. Many-to-many fields count as fields.
CLASSIFICATION: dict[str, dict[str, Kind]] = {
    # --- People and accounts (Django's) --------------------------------------------------
    "auth.user": _model(
        {
            IDENTITY: ("username", "first_name", "last_name", "email", "password"),
            OPERATIONAL: ("last_login", "date_joined"),
            NONE: ("id", "is_superuser", "is_staff", "is_active", "groups", "user_permissions"),
        }
    ),
    "auth.group": _model({NONE: ("id", "name", "permissions")}),
    "auth.permission": _model({NONE: ("id", "name", "content_type", "codename")}),
    # --- core ------------------------------------------------------------------------------
    "core.team": _model(
        {NONE: ("id", "name", "slug", "created_at", "default_licence", "erased_episodes")}
    ),
    "core.membership": _model(
        {IDENTITY: ("user",), OPERATIONAL: ("role", "created_at"), NONE: ("id", "team")}
    ),
    "core.embodiment": _model(_CATALOG, {NONE: ("name", "description", "spec", "updated_at")}),
    "core.robot": _model(
        _CATALOG,
        {
            NONE: (
                "embodiment",
                "name",
                "site",
                "serial",
                "status",
                "software_version",
                "last_seen_at",
                "updated_at",
            )
        },
    ),
    "core.robotapikey": _model(
        {
            IDENTITY: ("created_by",),
            NONE: (
                "id",
                "robot",
                "name",
                "prefix",
                "key_hash",
                "created_at",
                "expires_at",
                "revoked_at",
                "last_used_at",
            ),
        }
    ),
    "core.operator": _model(
        {
            IDENTITY: ("user",),
            PSEUDONYMOUS: ("code",),
            OPERATIONAL: ("active", "created_at"),
            NONE: ("id", "team"),
        }
    ),
    "core.operatoridentity": _model(
        {
            IDENTITY: ("full_name", "email"),
            PSEUDONYMOUS: ("operator",),
            OPERATIONAL: (
                "consent_given_at",
                "consent_version",
                "consent_withdrawn_at",
                "created_at",
                "updated_at",
            ),
            NONE: ("id",),
        }
    ),
    "core.condition": _model(
        _CATALOG,
        {NONE: ("factor", "level", "description", "reset_instructions", "reference_image")},
    ),
    "core.task": _model(_CATALOG, {NONE: ("slug", "name")}),
    "core.taskversion": _model(
        {
            IDENTITY: ("created_by",),
            NONE: (
                "id",
                "task",
                "number",
                "instruction",
                "scene_setup",
                "time_limit_s",
                "criteria",
                "content_hash",
                "locked_at",
                "created_at",
                "updated_at",
                "allowed_embodiments",
            ),
        }
    ),
    "core.auditevent": _model(
        {
            # Snapshots and labels of people's objects can hold names and accounts.
            IDENTITY: ("actor_user", "actor_label", "object_repr", "before", "after"),
            OPERATIONAL: ("created_at", "action"),
            NONE: ("id", "actor_robot", "team", "object_type", "object_id"),
        }
    ),
    "core.idempotencyrecord": _model(
        {
            # The principal is a user or robot id; the stored answer can hold anything the
            # API answered to that caller. Kept 24 hours.
            IDENTITY: ("principal", "response_body"),
            OPERATIONAL: ("created_at", "expires_at"),
            NONE: ("id", "key", "fingerprint", "method", "path", "state", "response_status"),
        }
    ),
    "core.datarequest": _model(
        {
            # The archive holds the operator's identity and account; the requester is a
            # person's account.
            IDENTITY: ("requested_by", "file"),
            PSEUDONYMOUS: ("operator",),
            OPERATIONAL: (
                "created_at",
                "started_at",
                "finished_at",
                "expires_at",
                "downloaded_at",
            ),
            NONE: (
                "id",
                "team",
                "kind",
                "include_files",
                "state",
                "progress",
                "step",
                "size_bytes",
                "checksum",
                "error",
            ),
        }
    ),
    "core.workerheartbeat": _model({NONE: ("worker_id", "host", "pid", "started_at", "last_seen")}),
    "core.throttlewindow": _model(
        # Keys name the caller (user or robot id, or IP address) for a minute.
        {IDENTITY: ("key",), NONE: ("window_start", "hits")}
    ),
    # --- teleop ----------------------------------------------------------------------------
    "teleop.collectionprotocol": _model(
        _CATALOG,
        {
            NONE: (
                "name",
                "task_version",
                "instructions",
                "min_control_hz",
                "min_duration_s",
                "max_duration_s",
                "required_cameras",
                "active",
            )
        },
    ),
    "teleop.protocoltarget": _model({NONE: ("id", "protocol", "condition", "target_count")}),
    "teleop.session": _model(
        {
            IDENTITY: ("opened_by",),
            PSEUDONYMOUS: ("operator",),
            OPERATIONAL: ("opened_at", "closed_at", "status"),
            NONE: ("id", "team", "robot", "task_version", "protocol", "kind", "code"),
        }
    ),
    "teleop.episode": _model(
        {
            IDENTITY: ("discarded_by",),
            # Camera frames can show the operator's face (blurred on export on request).
            PSEUDONYMOUS: ("operator", "file", "rerun_file"),
            OPERATIONAL: (
                "recorded_at",
                "duration_s",
                "measured_hz",
                "quality_flags",
                "check_results",
                "discarded_at",
                "discard_reason",
                "consent_version",
                "licence",
                "consent_withdrawn_at",
                "created_at",
                "updated_at",
            ),
            NONE: (
                "id",
                "session",
                "team",
                "robot",
                "task_version",
                "condition",
                "state",
                "declared_size_bytes",
                "declared_sha256",
                "sha256",
                "size_bytes",
                "num_steps",
                "camera_frame_counts",
                "truncated",
                "validation_report",
                "rejection_code",
                "rerun_version",
                "rerun_size_bytes",
                "rerun_build_s",
                "processing_attempts",
                "processing_started_at",
                "processed_at",
            ),
        }
    ),
    "teleop.label": _model(
        {
            IDENTITY: ("labeler", "labeler_label"),
            OPERATIONAL: (
                "outcome",
                "stages_reached",
                "stage_score",
                "failure_codes",
                "notes",
                "check_disagrees",
                "created_at",
                "superseded_at",
            ),
            NONE: ("id", "episode"),
        }
    ),
    "teleop.upload": _model(
        {
            NONE: (
                "id",
                "episode",
                "length",
                "offset",
                "state",
                "created_at",
                "updated_at",
                "expires_at",
                "completed_at",
                "sha256_state",
                "lease_token",
                "lease_expires_at",
            )
        }
    ),
    "teleop.uploadpart": _model(
        {NONE: ("id", "upload", "offset", "size_bytes", "key", "created_at")}
    ),
    "teleop.datasetview": _model(
        _CATALOG, {IDENTITY: ("created_by",), NONE: ("name", "description", "archived_at")}
    ),
    "teleop.datasetviewversion": _model(
        {
            IDENTITY: ("created_by",),
            NONE: (
                "id",
                "view",
                "number",
                "filters",
                "includes",
                "excludes",
                "trims",
                "episode_metadata",
                "episode_ids",
                "content_hash",
                "created_at",
            ),
        }
    ),
    "teleop.datasetexport": _model(
        {
            IDENTITY: ("created_by",),
            # The archive holds episodes under their operators' pseudonyms.
            PSEUDONYMOUS: ("file",),
            NONE: (
                "id",
                "view_version",
                "format",
                "images",
                "image_size",
                "blur_faces",
                "frame_filter",
                "state",
                "exporter_version",
                "checksum",
                "size_bytes",
                "num_episodes",
                "num_frames",
                "error",
                "created_at",
                "started_at",
                "finished_at",
            ),
        }
    ),
    # --- evaluation ------------------------------------------------------------------------
    "evaluation.policy": _model(
        _CATALOG, {IDENTITY: ("created_by",), NONE: ("name", "description", "updated_at")}
    ),
    "evaluation.policyversion": _model(
        {
            IDENTITY: ("created_by",),
            NONE: (
                "id",
                "policy",
                "label",
                "checkpoint_sha256",
                "checkpoint_uri",
                "server_url",
                "requires",
                "notes",
                "created_at",
            ),
        }
    ),
    "evaluation.benchmark": _model(
        _CATALOG,
        {
            IDENTITY: ("created_by",),
            NONE: (
                "name",
                "description",
                "trials_per_cell",
                "scoring_version",
                "published_at",
                "updated_at",
            ),
        },
    ),
    "evaluation.benchmarkcell": _model({NONE: ("id", "benchmark", "task_version", "condition")}),
    "evaluation.campaign": _model(
        _CATALOG,
        {
            IDENTITY: ("created_by",),
            PSEUDONYMOUS: ("operators",),
            NONE: (
                "name",
                "description",
                "benchmark",
                "trials_per_cell",
                "scoring_version",
                "mode",
                "robot_assignment",
                "blinded",
                "seed",
                "seed_salt",
                "schedule_algorithm",
                "schedule_fingerprint",
                "status",
                "started_at",
                "finished_at",
                "updated_at",
                "policy_versions",
                "robots",
            ),
        },
    ),
    "evaluation.campaigncell": _model({NONE: ("id", "campaign", "task_version", "condition")}),
    "evaluation.trial": _model(
        {
            IDENTITY: ("reported_by",),
            PSEUDONYMOUS: ("operator",),
            OPERATIONAL: ("notes", "assigned_at", "reported_at"),
            NONE: (
                "id",
                "campaign",
                "order",
                "block",
                "policy_version",
                "alias",
                "task_version",
                "condition",
                "robot",
                "block_head",
                "pair_id",
                "pair_position",
                "state",
                "outcome",
                "stages_reached",
                "stage_score",
                "failure_codes",
                "invalid_reason",
                "episode",
                "check_outcome",
                "check_disagrees",
                "outcome_source",
                "created_at",
                "updated_at",
            ),
        }
    ),
    "evaluation.trialreport": _model(
        {
            IDENTITY: ("reporter_user", "reporter_label"),
            PSEUDONYMOUS: ("operator",),
            OPERATIONAL: ("notes", "created_at", "superseded_at"),
            NONE: (
                "id",
                "trial",
                "state",
                "outcome",
                "stages_reached",
                "stage_score",
                "failure_codes",
                "invalid_reason",
                "episode",
                "check_outcome",
                "check_disagrees",
                "source",
                "reporter_robot",
            ),
        }
    ),
    "evaluation.leaderboardsnapshot": _model(
        {
            # Leaderboards name policies, tasks and conditions, never people.
            NONE: (
                "id",
                "scope",
                "benchmark",
                "campaign",
                "scoring_version",
                "data",
                "counts_digest",
                "trials_counted",
                "started_at",
                "computed_at",
                "compute_s",
            )
        }
    ),
}

# The apps whose models must all be classified here.
CLASSIFIED_APPS = ("auth", "core", "teleop", "evaluation")


def kind_of(label: str, field: str) -> Kind:
    """The kind of `field` of the model "app_label.model_name" (KeyError when unclassified)."""
    return CLASSIFICATION[label.lower()][field]


def fields_of_kind(kind: Kind) -> dict[str, tuple[str, ...]]:
    """{model label: fields} holding `kind`, for docs and scans."""
    out = {}
    for label, fields in CLASSIFICATION.items():
        names = tuple(name for name, k in fields.items() if k == kind)
        if names:
            out[label] = names
    return out
