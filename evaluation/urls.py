from django.urls import path

from evaluation import authoring_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("campaigns/", views.campaign_list, name="campaigns"),
    path("campaigns/new", authoring_views.campaign_new, name="campaign-new"),
    path("campaigns/plan", authoring_views.campaign_plan, name="campaign-plan"),
    path("campaigns/<uuid:pk>/", views.campaign_console, name="campaign"),
    path(
        "campaigns/<uuid:pk>/robots/<uuid:robot_pk>/next",
        views.campaign_next_trial,
        name="campaign-next-trial",
    ),
    path(
        "campaigns/<uuid:pk>/start",
        authoring_views.campaign_action,
        {"action": "start"},
        name="campaign-start-confirm",
    ),
    path(
        "campaigns/<uuid:pk>/finish",
        authoring_views.campaign_action,
        {"action": "finish"},
        name="campaign-finish-confirm",
    ),
    path(
        "campaigns/<uuid:pk>/unblind",
        authoring_views.campaign_action,
        {"action": "unblind"},
        name="campaign-unblind-confirm",
    ),
    path("trials/<uuid:pk>/", views.trial_detail, name="trial"),
    path("policies/", authoring_views.policy_list, name="policies"),
    path("policies/new", authoring_views.policy_new, name="policy-new"),
    path(
        "policies/<uuid:pk>/versions/new",
        authoring_views.policy_version_new,
        name="policy-version-new",
    ),
    path("benchmarks/", authoring_views.benchmark_list, name="benchmarks"),
    path("benchmarks/new", authoring_views.benchmark_new, name="benchmark-new"),
    path("benchmarks/<uuid:pk>/", authoring_views.benchmark_detail, name="benchmark"),
    path(
        "benchmarks/<uuid:pk>/publish",
        authoring_views.benchmark_publish,
        name="benchmark-publish-confirm",
    ),
    path("leaderboards/", views.leaderboard_list, name="leaderboards"),
    path("leaderboards/<uuid:pk>/", views.leaderboard, name="leaderboard"),
    path("leaderboards/<uuid:pk>/compare", views.leaderboard_compare, name="leaderboard-compare"),
]
