"""`manage.py export_view <view> --format lerobot|robomimic [--images raw|gzip|none]
[--blur-faces] --out DIR`:
write a view version to a directory, for scripted use (the same writer the export job uses)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from proving_ground.exports import faces
from teleop import consent, datasets
from teleop.models import DatasetExport, DatasetView


class Command(BaseCommand):
    help = "Export a dataset view version to LeRobot v3.0 or robomimic."

    def add_arguments(self, parser):
        parser.add_argument("view", help="view name (or id)")
        parser.add_argument("--team", help="team slug, when several teams have the name")
        parser.add_argument(
            "--view-version",
            type=int,
            dest="view_version",
            help="view version number (default: the latest)",
        )
        parser.add_argument("--format", required=True, choices=DatasetExport.Format.values)
        parser.add_argument(
            "--images",
            choices=DatasetExport.Images.values,
            default=DatasetExport.Images.RAW,
            help="robomimic camera images: uncompressed (raw, the default), gzip, or none",
        )
        parser.add_argument(
            "--blur-faces",
            action="store_true",
            dest="blur_faces",
            help="blur the faces found in camera frames (OpenCV's Haar cascades; "
            "docs/privacy.md says what they miss)",
        )
        parser.add_argument(
            "--out", required=True, type=Path, help="output directory (must not exist yet)"
        )

    def handle(self, *args, view, team, view_version, format, images, blur_faces, out, **options):
        views = DatasetView.objects.filter(name=view)
        if team:
            views = views.filter(team__slug=team)
        found = list(views[:2])
        if not found:
            found = list(DatasetView.objects.filter(pk=view)) if _is_uuid(view) else []
        if len(found) != 1:
            raise CommandError(f"No single view '{view}' (use --team or the id).")
        versions = found[0].versions.order_by("-number")
        chosen = versions.filter(number=view_version).first() if view_version else versions.first()
        if chosen is None:
            raise CommandError(f"View {view!r} has no version {view_version}.")
        if format == DatasetExport.Format.LEROBOT and images != DatasetExport.Images.RAW:
            raise CommandError(
                "LeRobot keeps camera frames as AV1 video; --images is for robomimic."
            )
        if out.exists():
            raise CommandError(f"{out} exists; exports never overwrite.")
        refusal = consent.export_refusal(chosen)
        if refusal is not None:
            raise CommandError(refusal.message())
        target = out if format == DatasetExport.Format.LEROBOT else out / "dataset.hdf5"
        if format != DatasetExport.Format.LEROBOT:
            out.mkdir(parents=True)
        if blur_faces and not faces.opencv_available():
            raise CommandError("--blur-faces needs OpenCV (opencv-python-headless 4.x).")
        frame_filter = faces.FaceBlur() if blur_faces else None
        result = datasets.write_export(chosen, format, target, images, frame_filter=frame_filter)
        self.stdout.write(
            f"Exported {result.num_episodes} episodes, {result.num_frames} "
            f"frames of '{found[0].name}' v{chosen.number} to {target} "
            f"(sha256 {result.sha256}, {result.exporter_version}"
            f"{', ' + result.frame_filter if result.frame_filter else ''})."
        )


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
