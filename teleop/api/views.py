"""Recording API: sessions, episodes, labels, protocols, and tus uploads. Thin views."""

from django.db.models import Prefetch
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core import access
from core.api.idempotency import idempotent
from core.api.keyset_pagination import NewestFirstKeysetPagination
from core.api.permissions import IsPerson
from core.api.schema import ErrorOut
from core.api.serializers import ConditionOut, StrictInputSerializer
from teleop import datasets, file_serving, selectors
from teleop.api import serializers as s
from teleop.models import (
    CollectionProtocol,
    DatasetExport,
    DatasetView,
    DatasetViewVersion,
    Episode,
    Label,
    Session,
)
from teleop.services import labels as label_services
from teleop.services import protocols, uploads
from teleop.services import sessions as session_services

_EXPORT_FILE = "The export: a tar for LeRobot, an HDF5 file for robomimic."
_PRESIGNED_REDIRECT = (
    "Files live on object storage: `Location` is a presigned URL, valid for a few minutes, "
    "that answers the bytes without credentials."
)


class _Filters(StrictInputSerializer):
    robot = s.serializers.UUIDField(required=False)
    session = s.serializers.UUIDField(required=False)
    status = s.serializers.ChoiceField(choices=Session.Status.choices, required=False)
    state = s.serializers.ChoiceField(choices=Episode.State.choices, required=False)
    limit = s.serializers.IntegerField(min_value=1, max_value=1000, required=False)
    offset = s.serializers.IntegerField(min_value=0, max_value=10**9, required=False)
    cursor = s.serializers.CharField(max_length=200, required=False)
    include_archived = s.serializers.BooleanField(required=False)


class _RecordingViewSet(viewsets.GenericViewSet):
    http_method_names = ["get", "post", "head", "options"]
    filter_fields: tuple[str, ...] = ()

    def _input(self, serializer_class):
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _filtered(self, queryset):
        params = _Filters(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        given = {k: v for k, v in params.validated_data.items() if k in self.filter_fields}
        return queryset.filter(**given)

    def list(self, request):
        page = self.paginate_queryset(self._filtered(self.get_queryset()))
        data = self.get_serializer(page, many=True).data
        return self.get_paginated_response(data)

    def retrieve(self, request, pk=None):
        return Response(self.get_serializer(self.get_object()).data)


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("robot", str), OpenApiParameter("status", str)]
    ),
    create=extend_schema(request=s.SessionIn, responses={201: s.SessionOut}),
)
class SessionViewSet(_RecordingViewSet):
    serializer_class = s.SessionOut
    filter_fields = ("robot", "status")

    def get_queryset(self):
        return access.own_recordings(
            Session.objects.select_related("robot", "operator"), self.request.user
        )

    @idempotent
    def create(self, request):
        data = self._input(s.SessionIn)
        session = session_services.open_session(
            actor=request.user,
            robot=data["robot"],
            task_version=data["task_version"],
            operator_code=data["operator"],
            kind=data["kind"],
            protocol=data.get("protocol"),
        )
        return Response(s.SessionOut(session).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            200: s.SessionOut,
            409: OpenApiResponse(
                ErrorOut, description="`session_closed`: the session with that code is closed."
            ),
        }
    )
    @action(detail=False, methods=["get"], url_path=r"by-code/(?P<code>[^/]{1,40})")
    def by_code(self, request, code=None):
        """The open session with this short code (shown on its console; any case, dashes
        ignored), for a robot to record into it: 404 for a code unknown in the caller's
        team, 409 once the session is closed, 403 for a robot whose session it is not."""
        session = session_services.session_for_code(actor=request.user, code=code)
        return Response(s.SessionOut(session).data)

    @extend_schema(request=None, responses=s.SessionOut)
    @action(detail=True, methods=["post"])
    @idempotent
    def close(self, request, pk=None):
        session = session_services.close_session(actor=request.user, session=self.get_object())
        return Response(s.SessionOut(session).data)

    @extend_schema(responses=s.SessionSummaryOut)
    @action(detail=True, methods=["get"])
    def summary(self, request, pk=None):
        summary = selectors.session_summary(self.get_object())
        return Response(s.SessionSummaryOut(summary).data)

    @extend_schema(responses=s.NextConditionOut)
    @action(detail=True, methods=["get"], url_path="next-condition")
    def next_condition(self, request, pk=None):
        """The condition to set up next (balanced coverage of the protocol's targets)."""
        condition = session_services.next_condition(session=self.get_object())
        body = ConditionOut(condition).data if condition is not None else None
        return Response({"condition": body})


@extend_schema_view(
    list=extend_schema(
        description=(
            "Episodes, newest first, a page at a time: follow `next` (and `previous`); "
            "each carries an opaque `cursor`. No count and no `offset`."
        ),
        parameters=[OpenApiParameter("session", str), OpenApiParameter("state", str)],
    ),
    create=extend_schema(request=s.EpisodeIn, responses={200: s.EpisodeOut, 201: s.EpisodeOut}),
)
class EpisodeViewSet(_RecordingViewSet):
    serializer_class = s.EpisodeOut
    filter_fields = ("session", "state")
    # The list grows to millions of rows: pages by cursor (no count, no offset), so a page
    # costs the same however many there are.
    pagination_class = NewestFirstKeysetPagination

    def get_queryset(self):
        current = Prefetch("labels", queryset=Label.objects.filter(superseded_at=None))
        queryset = Episode.objects.select_related("robot", "operator").prefetch_related(current)
        return access.own_recordings(queryset, self.request.user)

    @idempotent
    def create(self, request):
        data = self._input(s.EpisodeIn)
        sessions = access.own_recordings(Session.objects.select_related("robot"), request.user)
        session = sessions.filter(pk=data["session"]).first()
        if session is None:
            raise exceptions.ValidationError({"session": ["No such session."]})
        episode, upload, created = uploads.create_episode(
            actor=request.user,
            episode_id=data["id"],
            session=session,
            size_bytes=data["size_bytes"],
            sha256=data["sha256"],
            condition=data.get("condition"),
        )
        context = self.get_serializer_context() | {"upload": upload}
        episode = self.get_queryset().get(pk=episode.pk)
        return Response(
            s.EpisodeOut(episode, context=context).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(methods=["GET"], responses=s.LabelOut(many=True))
    @extend_schema(methods=["POST"], request=s.LabelIn, responses={201: s.LabelOut})
    @action(
        detail=True, methods=["get", "post"], permission_classes=[IsPerson], pagination_class=None
    )
    def labels(self, request, pk=None):
        """The label history, newest first (all of it, one array); POST a new label (it
        supersedes the current)."""
        episode = self.get_object()
        if request.method == "GET":
            return Response(s.LabelOut(Label.objects.filter(episode=episode), many=True).data)
        data = self._input(s.LabelIn)
        label = label_services.label_episode(actor=request.user, episode=episode, **data)
        return Response(s.LabelOut(label).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.DiscardIn, responses=s.EpisodeOut)
    @action(detail=True, methods=["post"], permission_classes=[IsPerson])
    def discard(self, request, pk=None):
        """Discard with a reason: a tombstone; the file and row stay."""
        data = self._input(s.DiscardIn)
        label_services.discard_episode(actor=request.user, episode=self.get_object(), **data)
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(
        responses={
            (200, "application/x-hdf5"): bytes,
            302: OpenApiResponse(description=_PRESIGNED_REDIRECT),
        }
    )
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        """The episode's HDF5 file as stored (once processing accepted it): streamed, or a 302
        to a short-lived presigned URL when files live on object storage."""
        episode = self.get_object()
        if not episode.file:
            raise exceptions.NotFound("This episode has no stored file.")
        response = file_serving.serve_file(
            episode.file, filename=f"episode-{episode.pk}.h5", content_type="application/x-hdf5"
        )
        response["X-Checksum-Sha256"] = episode.sha256
        return response


@extend_schema_view(create=extend_schema(request=s.ProtocolIn, responses={201: s.ProtocolOut}))
class ProtocolViewSet(_RecordingViewSet):
    serializer_class = s.ProtocolOut

    def get_queryset(self):
        queryset = CollectionProtocol.objects.select_related("team").prefetch_related("targets")
        return access.visible(queryset, self.request.user)

    @idempotent
    def create(self, request):
        if access.is_robot(request.user):
            raise exceptions.PermissionDenied("Robots do not define protocols.")
        data = self._input(s.ProtocolIn)
        targets = [(t["condition"], t["target_count"]) for t in data.pop("targets")]
        protocol = protocols.create_protocol(actor=request.user, targets=targets, **data)
        return Response(
            s.ProtocolOut(self.get_queryset().get(pk=protocol.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(responses=s.ConditionProgressOut(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)
    def progress(self, request, pk=None):
        """Accepted episodes (ready, labelled, not discarded) per condition vs target."""
        rows = selectors.protocol_progress(self.get_object())
        return Response(s.ConditionProgressOut(rows, many=True).data)


# --- Dataset views and exports --------------------------------------------------------------


def _visible_views(actor):
    if access.is_robot(actor):
        return DatasetView.objects.none()
    return access.visible(
        DatasetView.objects.select_related("team").prefetch_related("versions"), actor
    )


@extend_schema_view(
    list=extend_schema(
        description="Dataset views, archived ones left out unless `include_archived=true`.",
        parameters=[OpenApiParameter("include_archived", bool)],
    ),
    create=extend_schema(request=s.ViewIn, responses={201: s.ViewOut}),
)
class DatasetViewViewSet(_RecordingViewSet):
    """Saved, versioned selections of episodes."""

    serializer_class = s.ViewOut
    permission_classes = [IsPerson]

    def get_queryset(self):
        views = _visible_views(self.request.user)
        if self.action == "list" and self.request.query_params.get("include_archived") not in (
            "true",
            "True",
            "1",
        ):
            views = views.filter(archived_at=None)
        return views

    @extend_schema(request=None, responses={200: s.ViewOut})
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Archive the view: lists leave it out unless `include_archived=true`; its versions
        and exports stay. Archiving an archived view changes nothing."""
        view = datasets.archive_view(actor=request.user, view=self.get_object())
        return Response(s.ViewOut(self.get_queryset().get(pk=view.pk)).data)

    @extend_schema(request=None, responses={200: s.ViewOut})
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        """Bring an archived view back into the lists."""
        view = datasets.unarchive_view(actor=request.user, view=self.get_object())
        return Response(s.ViewOut(self.get_queryset().get(pk=view.pk)).data)

    @idempotent
    def create(self, request):
        data = self._input(s.ViewIn)
        view = datasets.create_view(actor=request.user, **data)
        return Response(
            s.ViewOut(self.get_queryset().get(pk=view.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(methods=["GET"], responses=s.ViewVersionOut(many=True))
    @extend_schema(methods=["POST"], request=s.ViewVersionIn, responses={201: s.ViewVersionOut})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def versions(self, request, pk=None):
        """A view's versions (all of them, one array); POST makes a new one (changing a view
        never edits a version)."""
        view = self.get_object()
        if request.method == "GET":
            return Response(s.ViewVersionOut(view.versions.all(), many=True).data)
        data = self._input(s.ViewVersionIn)
        version = datasets.create_view_version(actor=request.user, view=view, **data)
        return Response(s.ViewVersionOut(version).data, status=status.HTTP_201_CREATED)


class DatasetViewVersionViewSet(_RecordingViewSet):
    serializer_class = s.ViewVersionOut
    permission_classes = [IsPerson]

    def get_queryset(self):
        return DatasetViewVersion.objects.filter(view__in=_visible_views(self.request.user))

    @extend_schema(methods=["GET"], responses=s.ExportOut(many=True))
    @extend_schema(methods=["POST"], request=s.ExportIn, responses={201: s.ExportOut})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    @idempotent
    def exports(self, request, pk=None):
        """Exports of this version (all of them, one array); POST starts one (built by a
        background job)."""
        version = self.get_object()
        if request.method == "GET":
            return Response(s.ExportOut(version.exports.all(), many=True).data)
        data = self._input(s.ExportIn)
        export = datasets.start_export(actor=request.user, version=version, **data)
        return Response(s.ExportOut(export).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    destroy=extend_schema(
        description="Delete the export and its stored file (not while it is queued or "
        "running: 409). Authors of the view's team (admins, researchers).",
        responses={204: None},
    )
)
class DatasetExportViewSet(_RecordingViewSet):
    serializer_class = s.ExportOut
    permission_classes = [IsPerson]
    http_method_names = [*_RecordingViewSet.http_method_names, "delete"]

    def destroy(self, request, pk=None):
        datasets.delete_export(actor=request.user, export=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_queryset(self):
        return DatasetExport.objects.filter(
            view_version__view__in=_visible_views(self.request.user)
        )

    @extend_schema(
        responses={
            (200, "application/x-tar"): OpenApiResponse(bytes, description=_EXPORT_FILE),
            (200, "application/x-hdf5"): OpenApiResponse(bytes, description=_EXPORT_FILE),
            302: OpenApiResponse(description=_PRESIGNED_REDIRECT),
        }
    )
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The export's file (a tar for LeRobot, an HDF5 file for robomimic): streamed, or a
        302 to a short-lived presigned URL when files live on object storage."""
        export = self.get_object()
        if export.state != DatasetExport.State.DONE:
            raise exceptions.NotFound("The export is not built yet.")
        response = file_serving.serve_file(
            export.file,
            filename=datasets.export_filename(export),
            content_type=datasets.export_content_type(export),
        )
        response["X-Checksum-Sha256"] = export.checksum
        return response
