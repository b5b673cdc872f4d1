from django.urls import path

from core.pages import views

urlpatterns = [
    path("tasks/", views.task_list, name="tasks"),
    path("tasks/new", views.task_new, name="task-new"),
    path("tasks/criteria/validate", views.criteria_validate, name="criteria-validate"),
    path("tasks/<uuid:pk>/", views.task_detail, name="task"),
    path("tasks/<uuid:pk>/edit", views.task_edit, name="task-edit"),
    path("conditions/", views.condition_list, name="conditions"),
    path("conditions/<uuid:pk>/delete", views.condition_delete, name="condition-delete"),
]
