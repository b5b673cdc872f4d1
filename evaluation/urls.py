from django.urls import path

from evaluation import views

urlpatterns = [
    path("", views.home, name="home"),
    path("campaigns/", views.campaign_list, name="campaigns"),
    path("campaigns/<uuid:pk>/", views.campaign_console, name="campaign"),
    path(
        "campaigns/<uuid:pk>/robots/<uuid:robot_pk>/next",
        views.campaign_next_trial,
        name="campaign-next-trial",
    ),
    path("trials/<uuid:pk>/", views.trial_detail, name="trial"),
    path("leaderboards/", views.leaderboard_list, name="leaderboards"),
    path("leaderboards/<uuid:pk>/", views.leaderboard, name="leaderboard"),
    path("leaderboards/<uuid:pk>/compare", views.leaderboard_compare, name="leaderboard-compare"),
]
