from django.urls import path
from rest_framework.routers import SimpleRouter

from core.api import data_requests, views
from core.api.erasure import OperatorErasureView

router = SimpleRouter()
router.trailing_slash = "/?"  # robots may or may not send the slash; no redirects on POST
router.register("teams", views.TeamViewSet, basename="team")
router.register("embodiments", views.EmbodimentViewSet, basename="embodiment")
router.register("robots", views.RobotViewSet, basename="robot")
router.register("tasks", views.TaskViewSet, basename="task")
router.register("task-versions", views.TaskVersionViewSet, basename="taskversion")
router.register("conditions", views.ConditionViewSet, basename="condition")
router.register("operators", views.OperatorViewSet, basename="operator")
router.register("audit-events", views.AuditEventViewSet, basename="auditevent")
router.register("data-requests", data_requests.DataRequestViewSet, basename="datarequest")

urlpatterns = [
    path("version", views.VersionView.as_view(), name="version"),
    path("whoami", views.WhoAmIView.as_view(), name="whoami"),
    path(
        "operators/<uuid:pk>/erasure",
        OperatorErasureView.as_view(),
        name="operator-erasure",
    ),
    *router.urls,
]
