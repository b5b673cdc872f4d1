from django.urls import path

from core.pages import robots

app_name = "robots"
urlpatterns = [
    path("robots/", robots.robot_list, name="list"),
    path("robots/new", robots.robot_new, name="new"),
    path("robots/embodiments/new", robots.embodiment_new, name="embodiment-new"),
    path("robots/<uuid:pk>/", robots.robot_detail, name="detail"),
    path("robots/<uuid:pk>/keys", robots.key_new, name="key-new"),
    path("robots/keys/<uuid:pk>/revoke", robots.key_revoke, name="key-revoke"),
]
