from rest_framework.routers import SimpleRouter

from evaluation.api import views

router = SimpleRouter()
router.trailing_slash = "/?"  # robots may or may not send the slash; no redirects on POST
router.register("policies", views.PolicyViewSet, basename="policy")
router.register("benchmarks", views.BenchmarkViewSet, basename="benchmark")
router.register("campaigns", views.CampaignViewSet, basename="campaign")
router.register("trials", views.TrialViewSet, basename="trial")

urlpatterns = router.urls
