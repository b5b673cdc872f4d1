from django.urls import path

from teleop import dry_run_views, views

app_name = "teleop"
urlpatterns = [
    path("teleop/", views.session_new, name="session-new"),
    path("teleop/sessions/<uuid:pk>/", views.session_console, name="session"),
    path("teleop/sessions/<uuid:pk>/episodes", views.session_episodes, name="session-episodes"),
    path("teleop/sessions/<uuid:pk>/close", views.session_close, name="session-close"),
    path("episodes/", views.episode_browser, name="episodes"),
    path("episodes/<uuid:pk>/", views.episode_detail, name="episode"),
    path("episodes/<uuid:pk>/label", views.episode_label, name="episode-label"),
    path("episodes/<uuid:pk>/discard", views.episode_discard, name="episode-discard"),
    path("episodes/<uuid:pk>/viewer", views.episode_viewer, name="viewer"),
    path("episodes/<uuid:pk>/recording.rrd", views.episode_recording, name="recording"),
    path("episodes/<uuid:pk>/file.h5", views.episode_file, name="episode-file"),
    path("protocols/", views.protocol_list, name="protocols"),
    path("protocols/new", views.protocol_new, name="protocol-new"),
    path("datasets/", views.view_list, name="views"),
    path("datasets/save", views.save_view, name="view-save"),
    path("datasets/<uuid:pk>/", views.view_detail, name="view"),
    path("datasets/<uuid:pk>/exports", views.view_exports, name="view-exports"),
    path("datasets/<uuid:pk>/versions", views.view_new_version, name="view-new-version"),
    path("datasets/<uuid:pk>/archive", views.view_archive, name="view-archive"),
    path("exports/<uuid:pk>/delete", views.export_delete, name="export-delete"),
    path("exports/<uuid:pk>/download", views.export_download, name="export-download"),
    # The criteria editor's dry run (core/templates/core/task_form.html).
    path("tasks/criteria/dry-run", dry_run_views.run, name="criteria-dry-run"),
    path("tasks/criteria/episodes", dry_run_views.episodes, name="criteria-episodes"),
]
