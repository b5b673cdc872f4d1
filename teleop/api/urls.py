from django.urls import path
from rest_framework.routers import SimpleRouter

from teleop.api import uploads, views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("sessions", views.SessionViewSet, basename="session")
router.register("episodes", views.EpisodeViewSet, basename="episode")
router.register("protocols", views.ProtocolViewSet, basename="protocol")
router.register("dataset-views", views.DatasetViewViewSet, basename="datasetview")
router.register(
    "dataset-view-versions", views.DatasetViewVersionViewSet, basename="datasetviewversion"
)
router.register("exports", views.DatasetExportViewSet, basename="datasetexport")

urlpatterns = [
    path("uploads/", uploads.UploadCollectionView.as_view(), name="upload-list"),
    path("uploads/<uuid:upload_id>", uploads.UploadView.as_view(), name="upload-detail"),
    *router.urls,
]
