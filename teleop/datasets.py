"""Dataset views and exports: every write, owning its transaction (the services of the
dataset side of the recording app).

A view version freezes the episode ids its filters resolved to, so an export of a version is
the same episodes, trims and labels every time; the export records the view version, the
exporter version and a checksum of what it wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.text import slugify

from core import access, job_queue, rights
from core.errors import Conflict, InvalidInput
from core.models import Embodiment, Team
from core.services import audit
from proving_ground.criteria.spec import canonical_json
from proving_ground.exports import faces
from teleop import consent, storage
from teleop.models import DatasetExport, DatasetView, DatasetViewVersion, Episode, Label
from teleop.selectors import FILTER_KEYS, filter_episodes

log = logging.getLogger(__name__)


def _require_curator(actor, team_id) -> None:
    rights.require(actor, rights.Right.AUTHOR, team_id)


def _check_definition(filters, includes, excludes, trims, metadata) -> None:
    unknown = set(filters) - set(FILTER_KEYS)
    if unknown:
        raise InvalidInput(
            f"Unknown filters: {', '.join(sorted(unknown))}.",
            fields={"filters": [f"Unknown: {k}" for k in sorted(unknown)]},
        )
    for episode_id, bounds in trims.items():
        if (
            not isinstance(bounds, list | tuple)
            or len(bounds) != 2
            or not all(isinstance(b, int | float) for b in bounds)
            or not 0 <= bounds[0] < bounds[1]
        ):
            raise InvalidInput(
                f"Trim of {episode_id} must be [start_s, end_s], 0 <= start < end.",
                fields={"trims": [str(episode_id)]},
            )
    for episode_id, values in metadata.items():
        if not isinstance(values, dict):
            raise InvalidInput(
                f"Metadata of {episode_id} must be an object.",
                fields={"episode_metadata": [str(episode_id)]},
            )
        if "split" in values and not isinstance(values["split"], str):
            raise InvalidInput(
                f"The split of {episode_id} must be a name such as 'train'.",
                fields={"episode_metadata": [str(episode_id)]},
            )


def _resolve(team: Team, filters, includes, excludes) -> list[str]:
    team_episodes = Episode.objects.filter(team=team)
    chosen = set(filter_episodes(team_episodes, filters).values_list("pk", flat=True))
    if includes:
        included = set(
            team_episodes.filter(pk__in=includes, state=Episode.State.READY).values_list(
                "pk", flat=True
            )
        )
        missing = {str(i) for i in includes} - {str(i) for i in included}
        if missing:
            raise InvalidInput(
                "Included episodes must be ready episodes of the team.",
                fields={"includes": sorted(missing)},
            )
        chosen |= included
    chosen -= set(team_episodes.filter(pk__in=excludes).values_list("pk", flat=True))
    ordered = team_episodes.filter(pk__in=chosen).order_by("created_at", "pk")
    return [str(pk) for pk in ordered.values_list("pk", flat=True)]


def _new_version(
    *, actor, view: DatasetView, filters, includes, excludes, trims, metadata
) -> DatasetViewVersion:
    filters, trims, metadata = dict(filters or {}), dict(trims or {}), dict(metadata or {})
    includes = sorted({str(i) for i in includes or []})
    excludes = sorted({str(i) for i in excludes or []})
    _check_definition(filters, includes, excludes, trims, metadata)
    episode_ids = _resolve(view.team, filters, includes, excludes)
    content = {
        "filters": filters,
        "includes": includes,
        "excludes": excludes,
        "trims": trims,
        "episode_metadata": metadata,
        "episode_ids": episode_ids,
    }
    content_hash = hashlib.sha256(canonical_json(content).encode()).hexdigest()
    latest = view.versions.order_by("-number").first()
    if latest is not None and latest.content_hash == content_hash:
        return latest
    version = DatasetViewVersion.objects.create(
        view=view,
        number=(latest.number + 1) if latest else 1,
        filters=filters,
        includes=includes,
        excludes=excludes,
        trims=trims,
        episode_metadata=metadata,
        episode_ids=episode_ids,
        content_hash=content_hash,
        created_by=access.actor_label(actor),
    )
    audit.record_audit(
        actor=actor,
        action="create",
        obj=version,
        team=view.team,
        after={"number": version.number, "episodes": len(episode_ids)},
    )
    return version


def create_view(
    *,
    actor,
    team: Team,
    name: str,
    description: str = "",
    filters=None,
    includes=(),
    excludes=(),
    trims=None,
    episode_metadata=None,
    visibility: str = "private",
) -> DatasetView:
    """A view with its first version. Raises NotPermitted, InvalidInput, Conflict."""
    _require_curator(actor, team.pk)
    try:
        with transaction.atomic():
            view = DatasetView.objects.create(
                team=team,
                name=name,
                description=description,
                visibility=visibility,
                created_by=access.actor_label(actor),
            )
            _new_version(
                actor=actor,
                view=view,
                filters=filters,
                includes=includes,
                excludes=excludes,
                trims=trims,
                metadata=episode_metadata,
            )
    except IntegrityError as exc:
        raise Conflict(f"The team has a view named '{name}' already.") from exc
    return view


def create_view_version(
    *,
    actor,
    view: DatasetView,
    filters=None,
    includes=(),
    excludes=(),
    trims=None,
    episode_metadata=None,
) -> DatasetViewVersion:
    """A new version of a view (or the latest, if the content is the same)."""
    _require_curator(actor, view.team_id)
    with transaction.atomic():
        DatasetView.objects.select_for_update().get(pk=view.pk)
        return _new_version(
            actor=actor,
            view=view,
            filters=filters,
            includes=includes,
            excludes=excludes,
            trims=trims,
            metadata=episode_metadata,
        )


def archive_view(*, actor, view: DatasetView) -> DatasetView:
    """Archive a view: lists leave it out unless asked (`?archived=1` on the page,
    `?archived=true` in the API); its versions and exports stay and still download.
    Archiving an archived view changes nothing. Raises NotPermitted."""
    return _set_archived(actor=actor, view=view, archived=True)


def unarchive_view(*, actor, view: DatasetView) -> DatasetView:
    """Bring an archived view back into the lists. Raises NotPermitted."""
    return _set_archived(actor=actor, view=view, archived=False)


def _set_archived(*, actor, view: DatasetView, archived: bool) -> DatasetView:
    _require_curator(actor, view.team_id)
    with transaction.atomic():
        view = DatasetView.objects.select_for_update().get(pk=view.pk)
        if (view.archived_at is not None) == archived:
            return view
        before = {"archived_at": view.archived_at and view.archived_at.isoformat()}
        view.archived_at = timezone.now() if archived else None
        view.save(update_fields=["archived_at"])
        audit.record_audit(
            actor=actor,
            action="archive" if archived else "unarchive",
            obj=view,
            before=before,
            after={"archived_at": view.archived_at and view.archived_at.isoformat()},
        )
    return view


def delete_export(*, actor, export: DatasetExport) -> None:
    """Delete an export and its stored file (through the default storage, after the row's
    deletion commits, so a failed transaction never loses the file of a kept row). An export
    still queued or being built is refused (its job would store a file for no row).
    Side effects: an audit event (`delete`, with what the export was). Raises NotPermitted,
    Conflict."""
    view = export.view_version.view
    _require_curator(actor, view.team_id)
    with transaction.atomic():
        export = DatasetExport.objects.select_for_update().get(pk=export.pk)
        if export.state in (DatasetExport.State.QUEUED, DatasetExport.State.RUNNING):
            raise Conflict("This export is still being built; delete it once it is done or failed.")
        before = {
            "format": export.format,
            "state": export.state,
            "view_version": str(export.view_version_id),
            "file": export.file,
            "checksum": export.checksum,
            "size_bytes": export.size_bytes,
        }
        audit.record_audit(actor=actor, action="delete", obj=export, team=view.team, before=before)
        key = export.file
        export.delete()
        if key:
            transaction.on_commit(lambda: _delete_stored(key))


def _delete_stored(key: str) -> None:
    try:
        default_storage.delete(key)
    except FileNotFoundError:  # gone already
        pass
    except Exception:  # the row is gone; a file left behind is logged, not raised
        log.exception("could not delete the stored export file %s", key)


#: What a robomimic export does with camera images unless told otherwise: what a training
#: script would pick (robomimic's image datasets are 84x84), gzip level 4 a frame at a time.
DEFAULT_IMAGES = DatasetExport.Images.GZIP
DEFAULT_IMAGE_SIZE = 84
#: The sizes the export form offers (pixels, square); the API takes any from 8 to 1024.
IMAGE_SIZES = (84, 128, 256)
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024


def start_export(
    *,
    actor,
    version: DatasetViewVersion,
    format: str,
    images: str | None = None,
    image_size: int | None = DEFAULT_IMAGE_SIZE,
    blur_faces: bool = False,
) -> DatasetExport:
    """Queue an export of a view version; the job builds it. `images` says how a robomimic
    export holds camera images (DatasetExport.Images; default gzip), `image_size` at what
    square size (pixels; None keeps each camera's size). Both are robomimic's: LeRobot
    stores AV1 video at the cameras' size (`image_size` is ignored). `blur_faces` blurs the
    faces found in every camera frame, in either format (`proving_ground.exports.faces`).
    Raises NotPermitted, InvalidInput (unknown format or images choice, an images choice for
    LeRobot, a size out of range, empty view, faces to blur without OpenCV installed)."""
    _require_curator(actor, version.view.team_id)
    if format not in DatasetExport.Format.values:
        raise InvalidInput(f"Unknown format '{format}'.", fields={"format": ["Unknown."]})
    if images is not None and images not in DatasetExport.Images.values:
        raise InvalidInput(
            f"Unknown images choice '{images}'.",
            fields={"images": [f"One of: {', '.join(DatasetExport.Images.values)}."]},
        )
    if format == DatasetExport.Format.LEROBOT:
        if images not in (None, DatasetExport.Images.RAW):
            raise InvalidInput(
                "LeRobot exports keep camera frames as AV1 video; the images choice is for "
                "robomimic.",
                fields={"images": ["Leave it out for LeRobot."]},
            )
        images, image_size = DatasetExport.Images.RAW, None
    else:
        images = images or DEFAULT_IMAGES
        if images == DatasetExport.Images.NONE:
            image_size = None
        if image_size is not None and not (
            isinstance(image_size, int) and MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
        ):
            raise InvalidInput(
                f"Image size must be from {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE} pixels.",
                fields={"image_size": [f"From {MIN_IMAGE_SIZE} to {MAX_IMAGE_SIZE}."]},
            )
    if not version.episode_ids:
        raise InvalidInput("This view version holds no episodes.")
    if blur_faces and not faces.opencv_available():
        raise InvalidInput(
            "Blurring faces needs OpenCV, which this server lacks (requirements.txt pins it).",
            fields={"blur_faces": ["Not available on this server."]},
        )
    consent.require_export_consent(version)
    with transaction.atomic():
        export = DatasetExport.objects.create(
            view_version=version,
            format=format,
            images=images,
            image_size=image_size,
            blur_faces=blur_faces,
            created_by=access.actor_label(actor),
        )
        audit.record_audit(
            actor=actor,
            action="create",
            obj=export,
            team=version.view.team,
            after={
                "format": format,
                "images": images,
                "image_size": image_size,
                "blur_faces": blur_faces,
            },
        )
        job_queue.enqueue_on_commit("teleop.tasks.build_export_job", str(export.pk))
    return export


def robomimic_image_bytes(version: DatasetViewVersion, image_size: int | None = None) -> int:
    """About how many bytes a robomimic export of `version` spends on uncompressed camera
    images: a row per frame of the slowest camera, each row every camera's decoded RGB at
    its own size (`image_size` None) or `image_size` squared, twice (obs and next_obs).
    Trims count; an episode without a duration counts nothing. Two queries: the episodes'
    durations, then each embodiment's spec once."""
    episodes = list(
        Episode.objects.filter(pk__in=version.episode_ids, duration_s__gt=0).values_list(
            "pk", "duration_s", "robot__embodiment_id"
        )
    )
    specs = Embodiment.objects.in_bulk({embodiment for _, _, embodiment in episodes})
    total = 0
    for pk, duration_s, embodiment in episodes:
        cameras = specs[embodiment].spec.get("cameras") or []
        if not cameras:
            continue
        start, end = version.trims.get(str(pk)) or (0.0, duration_s)
        rows = max(0.0, min(end, duration_s) - start) * min(c["fps"] for c in cameras)
        pixels = sum(
            image_size * image_size if image_size else c["width"] * c["height"] for c in cameras
        )
        total += int(rows * pixels * 3 * 2)
    return total


#: Compressed size over uncompressed size of camera images, measured with
#: `bench/bench_export.py` on two 640x480 cameras of the benchmark scene (docs/exports.md):
#: gzip 1,239 of 2,765 MB, lzf 749 of 1,106 MB. Smaller images hold more detail a pixel and
#: may compress less: the page calls the result an estimate and gives the upper bound too.
MEASURED_RATIO = {DatasetExport.Images.GZIP: 0.45, DatasetExport.Images.LZF: 0.68}


def robomimic_size_estimates(version: DatasetViewVersion) -> list[dict[str, Any]]:
    """What the export form shows before an export: for each size it offers (and each
    camera's own size), the images' bytes uncompressed (an upper bound) and estimated with
    gzip and lzf (`MEASURED_RATIO`). One pass over the episodes
    (`robomimic_image_bytes` at the native size, scaled by pixel count for the others)."""
    native = robomimic_image_bytes(version)
    native_per_size = robomimic_image_bytes(version, 1)  # bytes per pixel of a square side²
    rows = []
    for size in (*IMAGE_SIZES, None):
        raw = native if size is None else native_per_size * size * size
        rows.append(
            {
                "size": size,
                "label": f"{size}x{size}" if size else "each camera's own size",
                "raw": raw,
                "gzip": int(raw * MEASURED_RATIO[DatasetExport.Images.GZIP]),
                "lzf": int(raw * MEASURED_RATIO[DatasetExport.Images.LZF]),
            }
        )
    return rows


# --- Building ---------------------------------------------------------------------------------


def export_episodes(version: DatasetViewVersion, paths: dict[str, Path]):
    """The exporter's inputs for a version: each episode with its task, trim, current label
    and metadata, in the version's order."""
    from proving_ground.exports.common import ExportEpisode

    current = Prefetch(
        "labels", queryset=Label.objects.filter(superseded_at=None), to_attr="current_labels"
    )
    episodes = {
        str(e.pk): e
        for e in Episode.objects.filter(pk__in=version.episode_ids)
        .select_related("task_version")
        .prefetch_related(current)
    }
    inputs = []
    for episode_id in version.episode_ids:
        episode = episodes[episode_id]
        label = episode.current_labels[0] if episode.current_labels else None
        trim = version.trims.get(episode_id)
        metadata = dict(version.episode_metadata.get(episode_id, {}))
        inputs.append(
            ExportEpisode(
                path=paths[episode_id],
                episode_id=episode_id,
                task=episode.task_version.instruction,
                start_s=trim[0] if trim else None,
                end_s=trim[1] if trim else None,
                label=None
                if label is None
                else {
                    "outcome": label.outcome,
                    "stages_reached": label.stages_reached,
                    "failure_codes": label.failure_codes,
                    "stage_score": label.stage_score,
                },
                metadata=metadata,
                split=metadata.get("split"),
            )
        )
    return inputs


def write_export(
    version: DatasetViewVersion,
    format: str,
    out: Path,
    images: str = DatasetExport.Images.RAW,
    image_size: int | None = None,
    frame_filter: Any = None,
) -> Any:
    """Write a version in `format` to `out` (a directory for LeRobot, a file for robomimic,
    with camera `images` as DatasetExport.Images says, resized to `image_size` squared if
    given), every camera frame through `frame_filter` if given (`faces.FaceBlur()` blurs
    faces). Used by the job and by `manage.py export_view`."""
    episodes = Episode.objects.filter(pk__in=version.episode_ids).select_related(
        "robot__embodiment"
    )
    with contextlib.ExitStack() as stack:
        paths = {
            str(e.pk): stack.enter_context(storage.local_episode_file(e.file)) for e in episodes
        }
        inputs = export_episodes(version, paths)
        spec = episodes[0].robot.embodiment.spec
        if format == DatasetExport.Format.LEROBOT:
            # Imported on use: PyAV and pyarrow stay out of a process that writes robomimic.
            from proving_ground.exports.lerobot import export_lerobot

            fps = min((c["fps"] for c in spec["cameras"]), default=spec["control_hz"])
            return export_lerobot(
                inputs,
                out,
                fps=fps,
                robot_type=episodes[0].robot.embodiment.name,
                joint_names=spec["joint_names"],
                frame_filter=frame_filter,
            )
        from proving_ground.exports.robomimic import export_robomimic

        return export_robomimic(
            inputs,
            out,
            include_images=images != DatasetExport.Images.NONE,
            image_compression={
                DatasetExport.Images.GZIP: "gzip",
                DatasetExport.Images.LZF: "lzf",
            }.get(images),
            image_size=image_size,
            frame_filter=frame_filter,
        )


def build_export(*, export_id) -> DatasetExport:
    """The export job: write the dataset, pack it (a tar of the LeRobot directory; the
    robomimic file as is), store it, and record checksum and counts. Idempotent: a done or
    failed export is left as it is; a queued one is built; a running one is built again from
    the start (its job was re-queued because its worker died: core.jobs), replacing any file
    the dead build stored under the same key."""
    with transaction.atomic():
        export = DatasetExport.objects.select_for_update().get(pk=export_id)
        if export.state not in (DatasetExport.State.QUEUED, DatasetExport.State.RUNNING):
            return export
        export.state = DatasetExport.State.RUNNING
        export.started_at = timezone.now()
        export.save(update_fields=["state", "started_at"])
    if consent.stop_export_without_consent(export):
        return export
    started = time.perf_counter()
    try:
        frame_filter = faces.FaceBlur() if export.blur_faces else None
        with tempfile.TemporaryDirectory(prefix="pg-export-") as tmp:
            tmp = Path(tmp)
            if export.format == DatasetExport.Format.LEROBOT:
                result = write_export(
                    export.view_version, export.format, tmp / "dataset", frame_filter=frame_filter
                )
                packed = tmp / "dataset.tar"
                with tarfile.open(packed, "w") as tar:
                    tar.add(tmp / "dataset", arcname=f"export-{export.pk}")
                key = f"exports/{export.pk}.tar"
            else:
                packed = tmp / "dataset.hdf5"
                result = write_export(
                    export.view_version,
                    export.format,
                    packed,
                    export.images,
                    export.image_size,
                    frame_filter,
                )
                key = f"exports/{export.pk}.hdf5"
            if default_storage.exists(key):  # left by a build that died after storing it
                default_storage.delete(key)
            with open(packed, "rb") as f:
                stored = default_storage.save(key, File(f))
            size = packed.stat().st_size
    except Exception as exc:  # the job records any failure on the row, then re-raises
        log.exception("export %s failed", export_id)
        DatasetExport.objects.filter(pk=export_id).update(
            state=DatasetExport.State.FAILED,
            # Shown on pages and in the API: the kind of failure only, since an exception's
            # text often names files on the server; the log above has the whole of it.
            error=f"The export failed ({type(exc).__name__}); the server log has the details.",
            finished_at=timezone.now(),
        )
        raise
    DatasetExport.objects.filter(pk=export_id).update(
        state=DatasetExport.State.DONE,
        file=stored,
        size_bytes=size,
        checksum=result.sha256,
        exporter_version=result.exporter_version,
        num_episodes=result.num_episodes,
        num_frames=result.num_frames,
        # What the files say was done to camera frames (none when no camera was exported).
        frame_filter=result.frame_filter or "",
        finished_at=timezone.now(),
    )
    log.info("export %s built in %.1f s", export_id, time.perf_counter() - started)
    export.refresh_from_db()
    return export


#: The longest a view's name runs in a download's filename.
FILENAME_NAME_CHARS = 60


def export_filename(export: DatasetExport) -> str:
    """The name an export downloads as, `<view slug>-v<version>-<export id, 8 hex>-<format>`
    with `.tar` or `.hdf5`: e.g. `wipe-spill-successes-it-v1-1a2b3c4d-robomimic.hdf5` for a
    view named `Wipe spill successes <i>it</i>`. The slug drops markup, punctuation and path
    separators (letters of any script stay; `teleop.file_serving.content_disposition` spells
    the name in ASCII, with `filename*` for the rest); a name with nothing left is `dataset`.
    The id part tells two exports of one version apart."""
    suffix = ".tar" if export.format == DatasetExport.Format.LEROBOT else ".hdf5"
    version = export.view_version
    slug = slugify(strip_tags(version.view.name), allow_unicode=True)
    slug = slug[:FILENAME_NAME_CHARS].strip("-_") or "dataset"
    return f"{slug}-v{version.number}-{export.pk.hex[:8]}-{export.format}{suffix}"


def export_content_type(export: DatasetExport) -> str:
    if export.format == DatasetExport.Format.LEROBOT:
        return "application/x-tar"
    return "application/x-hdf5"
