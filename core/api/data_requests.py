"""The data requests API: ask for an operator's access archive, follow its build, download
it once (docs/privacy.md, "Access and portability"; docs/api.md)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core import access
from core.api.permissions import IsPerson
from core.archive_download import archive_response
from core.models import DataRequest, Operator
from core.services import data_requests


class DataRequestIn(serializers.Serializer):
    operator = serializers.UUIDField(help_text="The operator's id (GET /operators/).")
    include_files = serializers.BooleanField(
        default=False, help_text="Add the episode files (HDF5) to the archive."
    )


class DataRequestOut(serializers.ModelSerializer):
    operator = serializers.SlugRelatedField(slug_field="code", read_only=True)
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by_you = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DataRequest
        fields = [
            "id",
            "kind",
            "team",
            "operator",
            "include_files",
            "state",
            "progress",
            "step",
            "size_bytes",
            "checksum",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "expires_at",
            "downloaded_at",
            "requested_by_you",
            "download_url",
        ]

    def get_requested_by_you(self, obj) -> bool:
        return obj.requested_by_id == self.context["request"].user.pk

    def get_download_url(self, obj) -> str | None:
        """Where the person who asked downloads the archive, once, while it is ready."""
        request = self.context["request"]
        if obj.state != DataRequest.State.READY or obj.requested_by_id != request.user.pk:
            return None
        return request.build_absolute_uri(f"/api/v1/data-requests/{obj.pk}/download")


_ARCHIVE = (
    "The access archive (`pg-access/1`, a zip of JSON and CSV with a README): sent once, "
    "then deleted."
)


class DataRequestViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Access requests: those you asked, those about your own operator code, and those of
    the teams you administer."""

    serializer_class = DataRequestOut
    permission_classes = [IsPerson]
    documented_errors = {
        404: "`not_found`: no such request, or one you may not see; on POST, an operator of "
        "a team you are not in.",
        410: "`gone`: the archive was downloaded already (it can be downloaded once), "
        "expired, or failed; ask for a new one.",
    }

    def get_queryset(self):
        return data_requests.visible_requests(self.request.user)

    @extend_schema(request=DataRequestIn, responses={201: DataRequestOut})
    def create(self, request, *args, **kwargs):
        """Ask for an operator's access archive (the operator themselves, or an admin of its
        team); a background job builds it. An operator of a team you are not in is a 404."""
        data = DataRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        operator = (
            access.in_my_teams(Operator.objects.select_related("team"), request.user)
            .filter(pk=data.validated_data["operator"])
            .first()
        )
        if operator is None:
            raise exceptions.NotFound("No such operator.")
        made = data_requests.request_access(
            actor=request.user,
            operator=operator,
            include_files=data.validated_data["include_files"],
        )
        body = DataRequestOut(made, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={(200, "application/zip"): OpenApiResponse(bytes, description=_ARCHIVE)}
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The archive, once, to the person who asked for it (403 for anyone else; 409 while
        it is built; 410 once downloaded or expired)."""
        made = self.get_object()
        data_requests.claim_download(actor=request.user, request=made)
        return archive_response(made)
