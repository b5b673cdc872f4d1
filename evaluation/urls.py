from django.urls import path

from evaluation import views

urlpatterns = [
    path("", views.home, name="home"),
    path("leaderboards/", views.leaderboard_list, name="leaderboards"),
    path("leaderboards/<uuid:pk>/", views.leaderboard, name="leaderboard"),
    path("leaderboards/<uuid:pk>/compare", views.leaderboard_compare, name="leaderboard-compare"),
]
