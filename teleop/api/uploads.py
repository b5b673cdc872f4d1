"""tus 1.0.0 resumable uploads: core, creation, checksum, termination, expiration.

A generic tus client (tuspy, tus-js-client, ...) needs nothing else: `POST /uploads/` with
`Upload-Metadata: session <base64>,sha256 <base64>` registers the episode and opens its
upload (`docs/api.md` lists the keys). Bodies of any size are streamed from the request to a
scratch file and stored in parts of at most 16 MiB (see teleop.services.receive_chunk);
nothing here buffers a chunk, and any web process takes any chunk. Under gunicorn a body
sent with `Transfer-Encoding: chunked` and no Content-Length reads as 0 bytes, so a PATCH
without Content-Length is answered 411. `OPTIONS` (tus discovery) needs no credentials.
"""

import base64
import binascii
import uuid

from django.conf import settings
from django.utils.http import http_date
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.api.exceptions import LengthRequired, PayloadTooLarge
from teleop.api import serializers as s
from teleop.models import Episode, Session, Upload
from teleop.services import uploads

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
TUS_CHECKSUM_ALGORITHMS = "sha1,sha256"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
# `Upload-Metadata` keys of the generic creation flow -> the fields of `POST /episodes/`
# (`EpisodeIn`), whose validation they go through; `Upload-Length` is `size_bytes`.
EPISODE_METADATA_FIELDS = {
    "episode_id": "id",
    "session": "session",
    "sha256": "sha256",
    "condition": "condition",
}
# Names episodes created without `episode_id`, from their session and content.
EPISODE_ID_NAMESPACE = uuid.UUID("5d4c6f2e-8a51-4c39-9a3e-6f1b2b7f0e41")


class PreconditionFailed(exceptions.APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = f"Tus-Resumable: {TUS_VERSION} is required."
    default_code = "tus_version_unsupported"


def _int_header(request, name: str) -> int:
    value = request.headers.get(name)
    if value is None:
        raise exceptions.ValidationError({name: ["This header is required."]})
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses (a 500).
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise exceptions.ValidationError({name: ["Must be a non-negative integer."]})
    return int(value)


def _parse_metadata(value: str) -> dict[str, str]:
    """`Upload-Metadata: key base64,key2 base64` → {key: decoded text}."""
    pairs = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, _, encoded = item.partition(" ")
        try:
            pairs[key] = base64.b64decode(encoded, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise exceptions.ValidationError(
                {"Upload-Metadata": [f"'{key}' is not base64 text."]}
            ) from exc
    return pairs


def _episode_input_errors(errors: dict) -> dict:
    """`EpisodeIn`'s errors named as the client sent them: metadata keys and headers."""
    fields = {"id": "episode_id", **{v: k for k, v in EPISODE_METADATA_FIELDS.items()}}
    named: dict = {}
    for field, messages in errors.items():
        if field == "size_bytes":
            named["Upload-Length"] = messages
        else:
            named.setdefault("Upload-Metadata", {})[fields.get(field, field)] = messages
    return named


class _TusView(APIView):
    # The tus answers beyond every write's (core.api.schema documents these with the rest).
    documented_errors = {
        404: "`not_found`: no such upload (or episode), one the caller may not see, or an "
        "upload that was terminated (tus termination).",
        410: "`upload_expired`: the upload expired; create it again.",
        411: "`length_required`: a PATCH needs `Content-Length`.",
        412: "`tus_version_unsupported`: send `Tus-Resumable: 1.0.0`.",
        413: "`payload_too_large`: `Upload-Length` over `Tus-Max-Size`, or a chunk past the "
        "upload's length.",
        415: "`unsupported_media_type`: a PATCH is `application/offset+octet-stream`.",
        460: "`checksum_mismatch`: the chunk does not match `Upload-Checksum`; none of it is kept.",
    }

    def get_permissions(self):
        if self.request.method == "OPTIONS":
            return []  # tus discovery: a client asks before it has credentials
        return super().get_permissions()

    def dispatch(self, request, *args, **kwargs):
        # tus 1.0: clients behind proxies that only pass GET and POST send the real method
        # in X-HTTP-Method-Override, and the server must honour it.
        override = request.headers.get("X-HTTP-Method-Override", "").strip().upper()
        if override and request.method == "POST":
            request.method = override
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != TUS_VERSION:
            raise PreconditionFailed()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Tus-Resumable"] = TUS_VERSION
        if response.status_code == status.HTTP_412_PRECONDITION_FAILED:
            response["Tus-Version"] = TUS_VERSION
        return response

    @extend_schema(request=None, responses={204: None}, auth=[])
    def options(self, request, *args, **kwargs):
        """tus discovery: the version, extensions, largest upload and checksum algorithms."""
        return Response(
            status=status.HTTP_204_NO_CONTENT,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(settings.MAX_EPISODE_BYTES),
                "Tus-Checksum-Algorithm": TUS_CHECKSUM_ALGORITHMS,
            },
        )

    def _headers(self, upload: Upload) -> dict[str, str]:
        return {
            "Upload-Offset": str(upload.offset),
            "Upload-Length": str(upload.length),
            "Upload-Expires": http_date(upload.expires_at.timestamp()),
            "Cache-Control": "no-store",
        }

    def _upload(self, upload_id) -> Upload:
        queryset = access.own_recordings(
            Upload.objects.select_related("episode"),
            self.request.user,
            robot_field="episode__robot",
            team_field="episode__team",
        )
        upload = queryset.filter(pk=upload_id).first()
        if upload is None:
            raise exceptions.NotFound("No such upload.")
        if upload.state == Upload.State.TERMINATED:
            # tus termination: requests to a terminated upload are 404 (or 410).
            raise exceptions.NotFound("The upload was terminated.")
        return upload


class UploadCollectionView(_TusView):
    """tus creation (`POST`) and discovery (`OPTIONS`)."""

    @extend_schema(
        request=None,
        responses={201: None},
        parameters=[
            OpenApiParameter("Upload-Length", int, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(
                "Upload-Metadata",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description=(
                    "`session <base64>,sha256 <base64>` (and optionally `episode_id`, "
                    "`condition`, `filename`): registers the episode as `POST /episodes/` "
                    "does; or `episode_id <base64>` alone for an episode registered before."
                ),
            ),
            OpenApiParameter("Tus-Resumable", str, OpenApiParameter.HEADER, required=True),
        ],
    )
    def post(self, request):
        """Open an upload at offset 0 (`Location`) of a new or registered episode."""
        length = _int_header(request, "Upload-Length")
        if length > settings.MAX_EPISODE_BYTES:
            raise PayloadTooLarge(
                f"Uploads are limited to {settings.MAX_EPISODE_BYTES} bytes (Tus-Max-Size)."
            )
        metadata = _parse_metadata(request.headers.get("Upload-Metadata", ""))
        if "session" in metadata:
            episode = self._register_episode(request, metadata, length)
        else:
            episode = self._registered_episode(request, metadata, length)
        upload = uploads.create_upload(actor=request.user, episode=episode)
        headers = self._headers(upload)
        headers["Location"] = request.build_absolute_uri(f"/api/v1/uploads/{upload.pk}")
        return Response(status=status.HTTP_201_CREATED, headers=headers)

    def _register_episode(self, request, metadata: dict[str, str], length: int) -> Episode:
        """The generic flow: the episode as `POST /episodes/` would register it, from the
        metadata; without `episode_id`, its id is derived from the session and the SHA-256,
        so creating the same file's upload again names the same episode."""
        data = {
            field: metadata[key]
            for key, field in EPISODE_METADATA_FIELDS.items()
            if key in metadata
        }
        data["size_bytes"] = length
        if "id" not in data:
            name = f"{data['session'].lower()}:{data.get('sha256', '').lower()}"
            data["id"] = str(uuid.uuid5(EPISODE_ID_NAMESPACE, name))
        serializer = s.EpisodeIn(data=data, context={"request": request})
        if not serializer.is_valid():
            raise exceptions.ValidationError(_episode_input_errors(serializer.errors))
        valid = serializer.validated_data
        session = (
            access.own_recordings(Session.objects.select_related("robot"), request.user)
            .filter(pk=valid["session"])
            .first()
        )
        if session is None:
            raise exceptions.ValidationError({"Upload-Metadata": {"session": ["No such session."]}})
        episode, _, _ = uploads.create_episode(
            actor=request.user,
            episode_id=valid["id"],
            session=session,
            size_bytes=valid["size_bytes"],
            sha256=valid["sha256"],
            condition=valid.get("condition"),
        )
        return episode

    def _registered_episode(self, request, metadata: dict[str, str], length: int) -> Episode:
        """The flow of an episode registered with `POST /episodes/`: `episode_id` alone."""
        try:
            episode_id = uuid.UUID(metadata.get("episode_id", ""))
        except ValueError as exc:
            raise exceptions.ValidationError(
                {"Upload-Metadata": ["session and sha256, or episode_id (a UUID), are required."]}
            ) from exc
        episode = (
            access.own_recordings(Episode.objects.select_related("robot"), request.user)
            .filter(pk=episode_id)
            .first()
        )
        if episode is None:
            raise exceptions.NotFound("No such episode.")
        if length != episode.declared_size_bytes:
            raise exceptions.ValidationError(
                {
                    "Upload-Length": [
                        f"The episode was declared with {episode.declared_size_bytes} bytes."
                    ]
                }
            )
        return episode


class UploadView(_TusView):
    """tus core: `HEAD` for the offset, `PATCH` a chunk, `DELETE` to terminate."""

    @extend_schema(request=None, responses={200: None})
    def head(self, request, upload_id):
        upload = self._upload(upload_id)
        return Response(status=status.HTTP_200_OK, headers=self._headers(upload))

    @extend_schema(
        request=None,
        responses={200: None},
        description="The same headers as HEAD (tus clients use HEAD).",
    )
    def get(self, request, upload_id):
        return self.head(request, upload_id)

    @extend_schema(
        request={OFFSET_CONTENT_TYPE: bytes},
        responses={204: None},
        parameters=[
            OpenApiParameter("Upload-Offset", int, OpenApiParameter.HEADER, required=True),
            OpenApiParameter(
                "Upload-Checksum",
                str,
                OpenApiParameter.HEADER,
                description="`sha1 <base64 digest of this chunk>` or `sha256 <base64>`",
            ),
            OpenApiParameter("Tus-Resumable", str, OpenApiParameter.HEADER, required=True),
        ],
    )
    def patch(self, request, upload_id):
        if request.content_type != OFFSET_CONTENT_TYPE:
            raise exceptions.UnsupportedMediaType(request.content_type)
        if "CONTENT_LENGTH" not in request.META or request.META["CONTENT_LENGTH"] == "":
            raise LengthRequired()
        length = _int_header(request, "Content-Length")
        offset = _int_header(request, "Upload-Offset")
        checksum = uploads.parse_checksum_header(request.headers.get("Upload-Checksum"))
        # The raw WSGI stream, bounded by Content-Length; DRF never parses this body.
        upload = uploads.receive_chunk(
            actor=request.user,
            upload_id=self._upload(upload_id).pk,
            offset=offset,
            length=length,
            stream=request._request,
            checksum=checksum,
        )
        return Response(status=status.HTTP_204_NO_CONTENT, headers=self._headers(upload))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, upload_id):
        uploads.terminate_upload(actor=request.user, upload_id=self._upload(upload_id).pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
