"""tus 1.0.0 resumable uploads: core, creation, checksum, termination, expiration.

Bodies are streamed from the request to a scratch file and stored as one part per chunk (see
teleop.services.receive_chunk); nothing here buffers a chunk, and any web process takes any
chunk. Under gunicorn a body sent with `Transfer-Encoding: chunked` and
no Content-Length reads as 0 bytes, so a PATCH without Content-Length is answered 411.
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
from core.api.exceptions import LengthRequired
from teleop import services
from teleop.models import Episode, Upload

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


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


class _TusView(APIView):
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
        return upload


class UploadCollectionView(_TusView):
    """tus creation (`POST`) and discovery (`OPTIONS`)."""

    @extend_schema(request=None, responses={204: None})
    def options(self, request, *args, **kwargs):
        return Response(
            status=status.HTTP_204_NO_CONTENT,
            headers={
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": TUS_EXTENSIONS,
                "Tus-Max-Size": str(settings.MAX_EPISODE_BYTES),
                "Tus-Checksum-Algorithm": "sha1,sha256",
            },
        )

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
                description="`episode_id <base64>`",
            ),
            OpenApiParameter("Tus-Resumable", str, OpenApiParameter.HEADER, required=True),
        ],
    )
    def post(self, request):
        """Create (or find) the upload of an episode registered with `POST /episodes/`."""
        length = _int_header(request, "Upload-Length")
        metadata = _parse_metadata(request.headers.get("Upload-Metadata", ""))
        try:
            episode_id = uuid.UUID(metadata.get("episode_id", ""))
        except ValueError as exc:
            raise exceptions.ValidationError(
                {"Upload-Metadata": ["episode_id (a UUID) is required."]}
            ) from exc
        episode = (
            access.own_recordings(Episode.objects.select_related("session__robot"), request.user)
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
        _, upload, _ = services.create_episode(
            actor=request.user,
            episode_id=episode.pk,
            session=episode.session,
            size_bytes=episode.declared_size_bytes,
            sha256=episode.declared_sha256,
        )
        headers = self._headers(upload)
        headers["Location"] = request.build_absolute_uri(f"/api/v1/uploads/{upload.pk}")
        return Response(status=status.HTTP_201_CREATED, headers=headers)


class UploadView(_TusView):
    """tus core: `HEAD` for the offset, `PATCH` a chunk, `DELETE` to terminate."""

    @extend_schema(request=None, responses={200: None})
    def head(self, request, upload_id):
        upload = self._upload(upload_id)
        if upload.state == Upload.State.TERMINATED:
            raise exceptions.NotFound("The upload was terminated.")
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
                description="`sha256 <base64 digest of this chunk>` (or `sha1 <base64>`)",
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
        checksum = services.parse_checksum_header(request.headers.get("Upload-Checksum"))
        # The raw WSGI stream, bounded by Content-Length; DRF never parses this body.
        upload = services.receive_chunk(
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
        services.terminate_upload(actor=request.user, upload_id=self._upload(upload_id).pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
