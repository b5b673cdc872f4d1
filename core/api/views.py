"""Core API views: thin. Input serializer validates, one service call writes, output
serializer answers."""

from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access, rights
from core.api import serializers as s
from core.api.idempotency import idempotent
from core.api.permissions import IsPerson, ReadAnyWriteByRights
from core.models import (
    AuditEvent,
    Condition,
    Embodiment,
    Operator,
    Robot,
    RobotAPIKey,
    Task,
    TaskVersion,
)
from core.services import conditions, embodiments, robots, task_versions
from core.version import API_VERSION, MIN_CLIENT_VERSION, SERVER_VERSION

TEAM_PARAM = OpenApiParameter("team", str, description="Only objects owned by this team (slug).")


class VersionView(APIView):
    """Server and API versions, and the oldest robot client this server supports."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(responses=s.VersionOut)
    def get(self, request):
        return Response(
            {
                "server_version": SERVER_VERSION,
                "api_version": API_VERSION,
                "min_client_version": MIN_CLIENT_VERSION,
            }
        )


class WhoAmIView(APIView):
    """Who the caller is: a robot (with its record) or a person (with teams and roles)."""

    @extend_schema(responses=s.WhoAmIOut)
    def get(self, request):
        actor = request.user
        if access.is_robot(actor):
            robot = actor.robot
            body = {
                "kind": "robot",
                "id": str(robot.pk),
                "name": robot.name,
                "robot": s.RobotOut(robot).data,
                "teams": [s.TeamOut(robot.team).data],
                "roles": {},
                "is_superuser": False,
            }
        else:
            roles = access.all_roles(actor)
            teams = access.member_teams(actor)
            body = {
                "kind": "person",
                "id": str(actor.pk),
                "name": actor.get_username(),
                "teams": s.TeamOut(teams, many=True).data,
                "roles": {t.slug: sorted(roles.get(str(t.pk), [])) for t in teams},
                "is_superuser": actor.is_superuser,
            }
        return Response(body)


class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Teams the caller belongs to."""

    serializer_class = s.TeamOut

    def get_queryset(self):
        return access.usable_teams(self.request.user)


class CatalogViewSet(viewsets.GenericViewSet):
    """Base for team-owned catalog objects: visible-only querysets, PATCH not PUT, filters
    validated, writes through services."""

    permission_classes = [ReadAnyWriteByRights]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    base_queryset = None
    output = None
    throttle_scope = None  # set per action (e.g. key management) for ScopedRateThrottle

    def get_serializer_class(self):
        return self.output

    def get_queryset(self):
        return access.visible(self.base_queryset, self.request.user)

    def _filtered(self):
        params = s.TeamFilter(
            data=self.request.query_params.dict(), context=self.get_serializer_context()
        )
        params.is_valid(raise_exception=True)
        return params.filter(self.get_queryset())

    def _input(self, serializer_class, partial=False):
        serializer = serializer_class(
            data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _answer(self, obj, status_code=status.HTTP_200_OK):
        return Response(
            self.output(obj, context=self.get_serializer_context()).data, status=status_code
        )

    @extend_schema(parameters=[TEAM_PARAM])
    def list(self, request):
        page = self.paginate_queryset(self._filtered())
        data = self.output(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)

    def retrieve(self, request, pk=None):
        return self._answer(self.get_object())


@extend_schema_view(
    create=extend_schema(request=s.EmbodimentIn, responses={201: s.EmbodimentOut}),
    partial_update=extend_schema(request=s.EmbodimentPatch, responses=s.EmbodimentOut),
)
class EmbodimentViewSet(CatalogViewSet):
    base_queryset = Embodiment.objects.select_related("team").prefetch_related("shared_with")
    output = s.EmbodimentOut

    @idempotent
    def create(self, request):
        data = self._input(s.EmbodimentIn)
        embodiment = embodiments.create_embodiment(actor=request.user, **data)
        return self._answer(embodiment, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        embodiment = self.get_object()
        data = self._input(s.EmbodimentPatch, partial=True)
        embodiment = embodiments.update_embodiment(
            actor=request.user, embodiment=embodiment, **data
        )
        return self._answer(embodiment)

    def destroy(self, request, pk=None):
        embodiments.delete_embodiment(actor=request.user, embodiment=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    create=extend_schema(request=s.RobotIn, responses={201: s.RobotOut}),
    partial_update=extend_schema(request=s.RobotPatch, responses=s.RobotOut),
)
class RobotViewSet(CatalogViewSet):
    base_queryset = Robot.objects.select_related("team", "embodiment").prefetch_related(
        "shared_with"
    )
    output = s.RobotOut

    def get_queryset(self):
        queryset = super().get_queryset()
        if access.is_robot(self.request.user) and self.action == "list":
            return queryset.filter(pk=self.request.user.robot.pk)  # a robot lists itself
        return queryset

    def get_object(self):
        robot = super().get_object()
        actor = self.request.user
        if access.is_robot(actor) and robot.pk != actor.robot.pk:
            raise exceptions.PermissionDenied("A robot may only act as itself.")
        return robot

    @idempotent
    def create(self, request):
        data = self._input(s.RobotIn)
        robot = robots.create_robot(actor=request.user, **data)
        return self._answer(robot, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        robot = self.get_object()
        data = self._input(s.RobotPatch, partial=True)
        return self._answer(robots.update_robot(actor=request.user, robot=robot, **data))

    def destroy(self, request, pk=None):
        robots.delete_robot(actor=request.user, robot=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.HeartbeatIn, responses=s.RobotOut)
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated])
    @idempotent
    def heartbeat(self, request, pk=None):
        """A robot reports it is alive (and its software version)."""
        if not access.is_robot(request.user):
            raise exceptions.PermissionDenied("Only a robot reports its heartbeat.")
        robot = self.get_object()
        data = self._input(s.HeartbeatIn)
        return self._answer(robots.record_heartbeat(actor=request.user, robot=robot, **data))

    def _robot_for_keys(self):
        robot = self.get_object()
        if not rights.may(self.request.user, rights.Right.MANAGE, robot.team_id):
            raise exceptions.PermissionDenied("Only an admin of the robot's team manages keys.")
        return robot

    @extend_schema(methods=["GET"], responses=s.APIKeyOut(many=True))
    @extend_schema(methods=["POST"], request=s.APIKeyIn, responses={201: s.APIKeyCreatedOut})
    @action(
        detail=True,
        methods=["get", "post"],
        permission_classes=[IsPerson],
        throttle_scope="keys",
        pagination_class=None,  # a robot has a few keys: all of them, unpaged
    )
    def keys(self, request, pk=None):
        """List a robot's keys (prefixes only; all of them, one array), or issue a new one
        (shown once)."""
        robot = self._robot_for_keys()
        if request.method == "GET":
            return Response(s.APIKeyOut(robot.api_keys.all(), many=True).data)
        data = self._input(s.APIKeyIn)
        key, clear = robots.issue_api_key(actor=request.user, robot=robot, **data)
        body = s.APIKeyOut(key).data | {"key": clear}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.APIKeyOut)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[IsPerson],
        url_path=r"keys/(?P<key_id>[0-9a-f-]{36})/revoke",
    )
    def revoke_key(self, request, pk=None, key_id=None):
        """Revoke one of a robot's keys; requests with it are refused from now on."""
        robot = self._robot_for_keys()
        try:
            key = robot.api_keys.get(pk=key_id)
        except (RobotAPIKey.DoesNotExist, ValueError) as exc:
            raise exceptions.NotFound("No such key for this robot.") from exc
        return Response(s.APIKeyOut(robots.revoke_api_key(actor=request.user, key=key)).data)


def _tasks_with_versions():
    return Task.objects.select_related("team").prefetch_related(
        "shared_with",
        Prefetch(
            "versions",
            queryset=TaskVersion.objects.order_by("-number")
            .prefetch_related("allowed_embodiments")
            .select_related("task"),
        ),
    )


@extend_schema_view(
    create=extend_schema(request=s.TaskIn, responses={201: s.TaskOut}),
    partial_update=extend_schema(request=s.TaskPatch, responses=s.TaskOut),
)
class TaskViewSet(CatalogViewSet):
    base_queryset = _tasks_with_versions()
    output = s.TaskOut

    def get_queryset(self):
        return access.visible(_tasks_with_versions(), self.request.user)

    @idempotent
    def create(self, request):
        data = self._input(s.TaskIn)
        task = task_versions.create_task(actor=request.user, **data)
        return self._answer(self.get_queryset().get(pk=task.pk), status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        task = self.get_object()
        data = self._input(s.TaskPatch, partial=True)
        task_versions.update_task(actor=request.user, task=task, **data)
        return self._answer(self.get_queryset().get(pk=task.pk))

    @extend_schema(methods=["GET"], responses=s.TaskVersionOut(many=True))
    @extend_schema(methods=["POST"], request=s.TaskVersionIn, responses={201: s.TaskVersionOut})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def versions(self, request, pk=None):
        """A task's versions, newest first (all of them, one array); POST makes a new version
        (the way to edit a task whose current version is in use)."""
        task = self.get_object()
        if request.method == "GET":
            return Response(s.TaskVersionOut(task.versions.all(), many=True).data)
        data = self._input(s.TaskVersionIn)
        version = task_versions.create_task_version(actor=request.user, task=task, **data)
        return Response(s.TaskVersionOut(version).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    partial_update=extend_schema(request=s.TaskVersionPatch, responses=s.TaskVersionOut)
)
class TaskVersionViewSet(CatalogViewSet):
    output = s.TaskVersionOut
    http_method_names = ["get", "patch", "head", "options"]

    def get_queryset(self):
        tasks = access.visible(Task.objects.all(), self.request.user)
        return (
            TaskVersion.objects.filter(task__in=tasks)
            .select_related("task")
            .prefetch_related("allowed_embodiments")
        )

    def _filtered(self):
        params = s.TeamFilter(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        team = params.validated_data.get("team")
        queryset = self.get_queryset()
        return queryset.filter(task__team__slug=team) if team else queryset

    def check_object_permissions(self, request, obj):
        # Versions are owned through their task.
        super().check_object_permissions(request, obj.task)

    def partial_update(self, request, pk=None):
        version = self.get_object()
        data = self._input(s.TaskVersionPatch, partial=True)
        version = task_versions.update_task_version(actor=request.user, version=version, **data)
        return self._answer(version)


@extend_schema_view(
    create=extend_schema(request=s.ConditionIn, responses={201: s.ConditionOut}),
    partial_update=extend_schema(request=s.ConditionPatch, responses=s.ConditionOut),
)
class ConditionViewSet(CatalogViewSet):
    base_queryset = Condition.objects.select_related("team").prefetch_related("shared_with")
    output = s.ConditionOut

    @idempotent
    def create(self, request):
        data = self._input(s.ConditionIn)
        condition = conditions.create_condition(actor=request.user, **data)
        return self._answer(condition, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        condition = self.get_object()
        data = self._input(s.ConditionPatch, partial=True)
        return self._answer(
            conditions.update_condition(actor=request.user, condition=condition, **data)
        )

    def destroy(self, request, pk=None):
        conditions.delete_condition(actor=request.user, condition=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class OperatorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Operators of the caller's teams, by pseudonym only."""

    serializer_class = s.OperatorOut
    permission_classes = [IsPerson]

    def get_queryset(self):
        return access.in_my_teams(Operator.objects.select_related("team"), self.request.user)


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit trail of the teams the caller administers."""

    serializer_class = s.AuditEventOut
    permission_classes = [IsPerson]

    def get_queryset(self):
        return access.in_managed_teams(AuditEvent.objects.select_related("team"), self.request.user)
