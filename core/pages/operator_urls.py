from django.urls import path

from core.pages import operators

app_name = "operators"
urlpatterns = [
    path("operators/", operators.operator_list, name="list"),
    path("operators/<uuid:pk>/erase", operators.operator_erase, name="erase"),
    path(
        "operators/teams/<uuid:team_pk>/erased-episodes",
        operators.erased_episodes,
        name="erased-episodes",
    ),
]
