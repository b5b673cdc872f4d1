"""Pages of the recording app: the teleop console, episodes, the episode browser, datasets.

Thin: forms validate, services write, selectors read. Every query is scoped to the teams the
signed-in person belongs to; another team's object is a 404.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from core import access, rights
from core.csp import VIEWER_POLICY, allow_connect_to
from core.errors import DomainError
from core.pages.refusals import show_refusal
from core.redirects import own_site_url
from proving_ground.stats.intervals import wilson_interval
from teleop import datasets, file_serving, selectors
from teleop.errors import CheckDisagrees
from teleop.forms import (
    SORTS,
    DiscardForm,
    EpisodeFilterForm,
    ExportForm,
    LabelForm,
    ProtocolForm,
    ProtocolTargetFormSet,
    SaveViewForm,
    SessionForm,
    ViewVersionForm,
    protocol_targets,
)
from teleop.models import (
    CollectionProtocol,
    DatasetExport,
    DatasetView,
    Episode,
    Label,
    ProtocolTarget,
    Session,
    Upload,
)
from teleop.services import labels as label_services
from teleop.services import protocols as protocol_services
from teleop.services import sessions


def _sessions(request):
    queryset = Session.objects.select_related("robot", "operator", "task_version__task", "protocol")
    return access.in_my_teams(queryset, request.user)


def _episodes(request):
    current = Prefetch(
        "labels", queryset=Label.objects.filter(superseded_at=None), to_attr="current_labels"
    )
    queryset = Episode.objects.select_related(
        "robot", "operator", "task_version__task", "condition"
    ).prefetch_related(current)
    return access.in_my_teams(queryset, request.user)


def _fail(request, exc: DomainError) -> None:
    messages.error(request, exc.detail)


# --- Teleop console -----------------------------------------------------------------------


@login_required
def session_new(request):
    form = SessionForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            session = sessions.open_session(
                actor=request.user,
                robot=form.cleaned_data["robot"],
                task_version=form.cleaned_data["task_version"],
                operator_code=form.cleaned_data["operator"].code,
                protocol=form.cleaned_data["protocol"],
            )
        except DomainError as exc:
            form.add_error(None, exc.detail)
        else:
            return redirect("teleop:session", session.pk)
    open_sessions = _sessions(request).filter(status=Session.Status.OPEN)[:20]
    return render(
        request,
        "teleop/session_new.html",
        {"form": form, "open_sessions": open_sessions},
        status=400 if form.errors else 200,
    )


def episode_rows(session):
    episodes = list(
        Episode.objects.filter(session=session)
        .select_related("condition")
        .prefetch_related(
            Prefetch(
                "labels",
                queryset=Label.objects.filter(superseded_at=None),
                to_attr="current_labels",
            )
        )
        .order_by("-created_at")
    )
    active = {
        u.episode_id: u
        for u in Upload.objects.filter(episode__in=episodes, state=Upload.State.ACTIVE)
    }
    for episode in episodes:
        upload = active.get(episode.pk)
        episode.upload_percent = (
            round(100 * upload.offset / upload.length) if upload and upload.length else None
        )
        episode.current_label = episode.current_labels[0] if episode.current_labels else None
    return episodes


#: The live episode table refreshes every LIVE_FAST_S seconds while an episode is on its way
#: or the session saw activity in the last LIVE_RECENT, every LIVE_SLOW_S while an open session
#: is quiet, and not at all once a closed session's episodes are all settled.
LIVE_FAST_S = 2
LIVE_SLOW_S = 10
LIVE_RECENT = timedelta(minutes=2)


def poll_every(session, episodes) -> int | None:
    """Seconds between refreshes of the console's live episode table (None: stop)."""
    states = {e.state for e in episodes}
    if states & {Episode.State.UPLOADING, Episode.State.PROCESSING}:
        return LIVE_FAST_S
    if session.status == Session.Status.OPEN or Episode.State.CREATED in states:
        # A created episode of a closed session may still be uploaded.
        last = max([session.opened_at, *(e.updated_at for e in episodes)])
        return LIVE_FAST_S if timezone.now() - last < LIVE_RECENT else LIVE_SLOW_S
    return None


#: A robot seen this recently (its last API call, core.services.robots.authenticate_api_key)
#: is shown as connected.
CONNECTED_WITHIN = timedelta(seconds=60)


def seen_ago(when, now) -> str:
    """`when` as "12 s ago", "4 min ago", "3 h ago" or "2 days ago"."""
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return f"{seconds} s ago"


def _live_rows(session) -> dict:
    """Context of `_episode_rows.html`: the rows, the running summary, the poll interval,
    the robot's last sign of life and, in an open session, the condition to set up next."""
    episodes = episode_rows(session)
    now = timezone.now()
    last_seen = session.robot.last_seen_at  # the session is read afresh for each poll
    is_open = session.status == Session.Status.OPEN
    return {
        "session": session,
        "episodes": episodes,
        "summary": selectors.session_summary(session),
        "poll_every": poll_every(session, episodes),
        "robot_seen_ago": seen_ago(last_seen, now) if last_seen else None,
        "robot_connected": bool(last_seen and now - last_seen <= CONNECTED_WITHIN),
        "next_condition": sessions.next_condition(session=session) if is_open else None,
    }


@login_required
def session_console(request, pk):
    session = get_object_or_404(_sessions(request), pk=pk)
    context = {
        **_live_rows(session),
        "criteria": session.task_version.criteria,
        "progress": selectors.protocol_progress(session.protocol) if session.protocol else [],
    }
    if session.status == Session.Status.CLOSED:
        context["interval"] = _success_interval(context["summary"])
    return render(request, "teleop/session_console.html", context)


def _success_interval(summary):
    """Success rate of the labelled episodes with a Wilson 95% interval (the SDK's, as on
    leaderboards)."""
    judged = summary.successes + summary.failures + summary.partials
    if not judged:
        return None
    low, high = wilson_interval(summary.successes, judged, 0.95)
    return {
        "k": summary.successes,
        "n": judged,
        "rate": summary.successes / judged,
        "low": low,
        "high": high,
    }


@login_required
def session_episodes(request, pk):
    """The live part of the console, polled by htmx: it replaces itself (outerHTML), so each
    answer sets how soon the next poll comes, or that none does."""
    session = get_object_or_404(_sessions(request), pk=pk)
    return render(request, "teleop/_episode_rows.html", _live_rows(session))


@login_required
@require_POST
def session_close(request, pk):
    """Close a session. Closing cannot be undone, so a POST without `confirm=yes` (the
    console's button) closes nothing and answers a page that asks, whose button confirms."""
    session = get_object_or_404(_sessions(request), pk=pk)
    if session.status == Session.Status.OPEN and request.POST.get("confirm") != "yes":
        return render(request, "teleop/session_close_confirm.html", {"session": session})
    try:
        sessions.close_session(actor=request.user, session=session)
        messages.success(request, "Session closed.")
    except DomainError as exc:
        _fail(request, exc)
    return redirect("teleop:session", session.pk)


def _label_form(episode, data=None) -> LabelForm:
    """The label form of an episode, filled with its current label. Field ids carry the
    episode, so htmx, which puts the focus back on the element with the same id after a swap,
    never moves it into another episode's field."""
    current = episode.current_labels[0] if episode.current_labels else None
    initial = (
        {
            "outcome": current.outcome,
            "stages_reached": current.stages_reached,
            "failure_codes": current.failure_codes,
            "notes": current.notes,
        }
        if current
        else None
    )
    return LabelForm(
        data,
        criteria=episode.task_version.criteria,
        initial=initial,
        auto_id=f"label-{episode.pk}-%s",
    )


def _discard_form(episode, data=None) -> DiscardForm:
    return DiscardForm(data, auto_id=f"discard-{episode.pk}-%s")


def _label_panel(request, episode, *, label_form=None, discard_form=None, done="", status=200):
    """The label panel of an episode, as htmx swaps it into the console's aside. `done` is
    the message of a change just made; with it the answer tells the live table to refresh."""
    response = render(
        request,
        "teleop/_label_panel.html",
        {
            "episode": episode,
            "form": label_form or _label_form(episode),
            "discard_form": discard_form or _discard_form(episode),
            "done": done,
            **_check_context(episode),
        },
        status=status,
    )
    if done:
        response["HX-Trigger"] = "episodes-changed"
    return response


def _check_context(episode) -> dict:
    """What the label panel shows of the automatic checks: each result, and the success
    check's id and verdict ("success", "failure" or "")."""
    success_check = (episode.task_version.criteria.get("success") or {}).get("check")
    return {
        "check_results": episode.check_results or [],
        "success_check": success_check,
        "check_verdict": label_services.check_verdict(episode),
    }


def _form_errors(form) -> str:
    return " ".join(e for errors in form.errors.values() for e in errors)


@login_required
def episode_label(request, pk):
    """GET: the label panel of an episode; POST: save a label (htmx or plain form)."""
    episode = get_object_or_404(_episodes(request), pk=pk)
    form = _label_form(episode, request.POST or None)
    saved = False
    if request.method == "POST" and form.is_valid():
        try:
            label_services.label_episode(actor=request.user, episode=episode, **form.cleaned_data)
            saved = True
        except CheckDisagrees as exc:
            form.add_error("confirm_disagreement", exc.detail)
        except DomainError as exc:
            # A contradiction names its field (failure codes, stages): said beside it.
            field = next((f for f in exc.fields if f in form.fields), None)
            form.add_error(field, exc.detail)
    if request.method == "POST" and not request.headers.get("HX-Request"):
        if saved:
            messages.success(request, "Label saved.")
        else:
            messages.error(request, "The label was not saved: " + _form_errors(form))
        return redirect(
            own_site_url(
                request, request.POST.get("next"), fallback=reverse("teleop:episode", args=[pk])
            )
        )
    return _label_panel(
        request,
        episode,
        label_form=form,
        done="Label saved." if saved else "",
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def episode_discard(request, pk):
    """Discard an episode with a reason: htmx gets the label panel back (the live table
    refreshes), a plain form a redirect with a message."""
    episode = get_object_or_404(_episodes(request), pk=pk)
    form = _discard_form(episode, request.POST)
    done = ""
    if episode.is_discarded:
        # A second submit (a stale page, a double Enter): the first reason stays.
        done = f"This episode was discarded already: {episode.discard_reason}"
    elif form.is_valid():
        try:
            label_services.discard_episode(
                actor=request.user, episode=episode, reason=form.cleaned_data["reason"]
            )
            done = "Episode discarded; it stays listed with its reason."
        except DomainError as exc:
            form.add_error(None, exc.detail)
    if not request.headers.get("HX-Request"):
        if done:
            messages.success(request, done)
        else:
            messages.error(request, _form_errors(form))
        return redirect(
            own_site_url(
                request, request.POST.get("next"), fallback=reverse("teleop:episode", args=[pk])
            )
        )
    if not done:
        return _label_panel(request, episode, discard_form=form, status=400)
    return _label_panel(request, _episodes(request).get(pk=pk), done=done)


# --- Episode page and replay --------------------------------------------------------------


@login_required
def episode_detail(request, pk):
    episode = get_object_or_404(_episodes(request), pk=pk)
    siblings = list(
        Episode.objects.filter(session_id=episode.session_id)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
    )
    index = siblings.index(episode.pk)
    labels = Label.objects.filter(episode=episode).order_by("-created_at")
    viewer_url = None
    if episode.rerun_file and viewer_index().exists():
        # On object storage the viewer fetches the `.rrd` straight from the store (a presigned
        # URL, cross-origin: the bucket's CORS allows this site, docs/storage.md); handing it
        # our redirecting endpoint instead would make the browser send `Origin: null` after
        # the cross-origin redirect, which a bucket CORS rule for this site does not match.
        recording = file_serving.presigned_url(
            episode.rerun_file, content_type="application/octet-stream"
        )
        if recording is None:
            token = recording_token(episode)
            recording = request.build_absolute_uri(
                reverse("teleop:recording", args=[pk]) + "?" + urlencode({"token": token})
            )
        viewer_url = reverse("teleop:viewer", args=[pk]) + "?" + urlencode({"url": recording})
    return render(
        request,
        "teleop/episode_detail.html",
        {
            "episode": episode,
            "labels": labels,
            "viewer_url": viewer_url,
            "previous": siblings[index - 1] if index > 0 else None,
            "next": siblings[index + 1] if index + 1 < len(siblings) else None,
            "label_form": _label_form(episode),
            "discard_form": _discard_form(episode),
            **_check_context(episode),
            "problems": (episode.validation_report or {}).get("problems", []),
        },
    )


def viewer_index() -> Path:
    from proving_ground.replay import RERUN_VERSION

    return Path(settings.RERUN_VIEWER_ROOT) / f"rerun-{RERUN_VERSION}" / "index.html"


@login_required
@xframe_options_sameorigin
def episode_viewer(request, pk):
    """Rerun's web viewer (from the pinned rerun-sdk wheel, served by us) for the iframe of
    the episode page. It reads the recording URL from `?url=`, which must be absolute. Its
    policy lets it connect to this site and, on object storage, to the store's origin (where
    the presigned `.rrd` URL points); to no other host."""
    get_object_or_404(_episodes(request), pk=pk)
    index = viewer_index()
    if not index.exists():
        raise Http404("The Rerun web viewer is not installed (run `make run`).")
    base = f"{settings.STATIC_URL}{index.parent.name}/"
    store = file_serving.presigned_url_origin()
    # The viewer's request guard (scripts/install_rerun_viewer.py) lets it fetch from the
    # store too; the policy below allows the same origin and no other.
    head = f'<head><base href="{base}">'
    if store:
        head += f'<meta name="pg-connect-origins" content="{escape(store)}">'
    html = index.read_text().replace("<head>", head, 1)
    response = HttpResponse(html)
    response["Content-Security-Policy"] = allow_connect_to(VIEWER_POLICY, store)
    return response


RECORDING_SALT = "teleop.recording"
RECORDING_LINK_MAX_AGE_S = 6 * 3600


def recording_token(episode: Episode) -> str:
    """A replay link's token: signs the episode and the stored recording it may fetch, so a
    recording rebuilt under a new key (after an erasure, teleop/erasure.py) voids every link
    handed out before."""
    return signing.dumps([str(episode.pk), episode.rerun_file], salt=RECORDING_SALT)


def episode_recording(request, pk):
    """The episode's `.rrd`. The viewer's wasm fetches it without the session cookie, so the
    episode page hands it a signed link (valid for a few hours, for this episode's current
    recording only); a signed-in member of the team may also fetch it directly."""
    token = request.GET.get("token")
    if token is not None:
        try:
            signed = signing.loads(token, salt=RECORDING_SALT, max_age=RECORDING_LINK_MAX_AGE_S)
        except signing.BadSignature as exc:
            raise Http404("This replay link is not valid (or has expired).") from exc
        if not isinstance(signed, list) or len(signed) != 2 or signed[0] != str(pk):
            raise Http404("This replay link is for another episode.")
        episode = get_object_or_404(Episode, pk=pk)
        if signed[1] != episode.rerun_file:
            raise Http404("This replay link was revoked: the recording was rebuilt.")
    elif request.user.is_authenticated:
        episode = get_object_or_404(_episodes(request), pk=pk)
    else:
        raise Http404("Sign in to replay this episode.")
    if not episode.rerun_file:
        raise Http404("This episode has no recording yet.")
    response = file_serving.serve_file(
        episode.rerun_file,
        filename=f"episode-{episode.pk}.rrd",
        content_type="application/octet-stream",
        as_attachment=False,
    )
    if response.status_code == 200:  # streamed; a redirect to a presigned URL is never cached
        response["Cache-Control"] = "private, max-age=60"
    return response


@login_required
def episode_file(request, pk):
    """The episode's HDF5 file, as stored (a presigned redirect on object storage)."""
    episode = get_object_or_404(_episodes(request), pk=pk)
    if not episode.file:
        raise Http404("This episode has no stored file.")
    return file_serving.serve_file(
        episode.file, filename=f"episode-{episode.pk}.h5", content_type="application/x-hdf5"
    )


# --- Episode browser and datasets ---------------------------------------------------------

PAGE_SIZE = 50


@login_required
def episode_browser(request):
    episodes = _episodes(request)
    form = EpisodeFilterForm(request.GET or None, episodes=episodes)
    filters = form.filters() if form.is_valid() else {}
    if request.GET and not form.is_valid():
        messages.error(request, "Some filters were not valid and were ignored.")
    sort = form.cleaned_data.get("sort") if form.is_valid() else ""
    results = selectors.filter_episodes(episodes, filters).order_by(
        sort if sort in SORTS else "-created_at", "pk"
    )
    page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    # The filters as a query without the page and the fields left empty (which filter nothing).
    query = QueryDict(mutable=True)
    for key, values in request.GET.lists():
        if key != "page" and any(values):
            query.setlist(key, [v for v in values if v])
    return render(
        request,
        "teleop/episode_browser.html",
        {
            "form": form,
            "page": page,
            "query": query.urlencode(),
            "previous_url": _page_url(query, page.previous_page_number())
            if page.has_previous()
            else None,
            "next_url": _page_url(query, page.next_page_number()) if page.has_next() else None,
            "filters": filters,
            "save_form": SaveViewForm(user=request.user),
        },
    )


def _page_url(query: QueryDict, number: int) -> str:
    query = query.copy()
    query["page"] = str(number)
    return "?" + query.urlencode()


@login_required
@require_POST
def save_view(request):
    form = SaveViewForm(request.POST, user=request.user)
    episodes = _episodes(request)
    filter_form = EpisodeFilterForm(request.POST, episodes=episodes)
    if not (form.is_valid() and filter_form.is_valid()):
        problems = [
            f"{form[f].label if f in form.fields else 'Form'}: {' '.join(e)}"
            for f, e in form.errors.items()
        ]
        messages.error(request, "The view was not saved. " + " ".join(problems))
        return redirect(reverse("teleop:episodes") + "?" + request.POST.get("query", ""))
    try:
        view = datasets.create_view(
            actor=request.user,
            team=form.cleaned_data["team"],
            name=form.cleaned_data["name"],
            filters=filter_form.filters(),
        )
    except DomainError as exc:
        _fail(request, exc)
        return redirect(reverse("teleop:episodes") + "?" + request.POST.get("query", ""))
    messages.success(request, f"Saved view '{view.name}'.")
    return redirect("teleop:view", view.pk)


def _views(request):
    return access.visible(DatasetView.objects.select_related("team"), request.user)


@login_required
def view_list(request):
    """The views a person sees; archived ones only with `?archived=1`."""
    show_archived = request.GET.get("archived") == "1"
    views = _views(request).prefetch_related("versions")
    if not show_archived:
        views = views.filter(archived_at=None)
    return render(
        request,
        "teleop/view_list.html",
        {
            "views": views,
            "show_archived": show_archived,
            "archived_count": _views(request).exclude(archived_at=None).count(),
        },
    )


@login_required
def view_detail(request, pk):
    view = get_object_or_404(_views(request), pk=pk)
    versions = list(view.versions.order_by("-number"))
    latest = versions[0]
    form = ExportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            datasets.start_export(
                actor=request.user,
                version=latest,
                format=form.cleaned_data["format"],
                images=form.cleaned_data["images"],
                image_size=form.cleaned_data["image_size"],
                blur_faces=form.cleaned_data["blur_faces"],
            )
            messages.success(request, "Export queued; it is built in the background.")
            return redirect("teleop:view", view.pk)
        except DomainError as exc:
            show_refusal(form, exc)
    return _view_page(
        request,
        view,
        versions,
        export_form=form,
        status=400 if request.method == "POST" else 200,  # a valid POST redirected
    )


def _view_page(request, view, versions, *, export_form=None, version_form=None, status=200):
    latest = versions[0]
    exports = DatasetExport.objects.filter(view_version__view=view).select_related("view_version")
    return render(
        request,
        "teleop/view_detail.html",
        {
            "view": view,
            "versions": versions,
            "latest": latest,
            "form": export_form or ExportForm(),
            "version_form": version_form
            or ViewVersionForm(version=latest, episodes=_episodes(request)),
            "may_author": rights.may(request.user, rights.Right.AUTHOR, view.team_id),
            "exports": exports,
            "size_estimates": datasets.robomimic_size_estimates(latest),
            "episodes": _episodes(request)
            .filter(pk__in=latest.episode_ids[:200])
            .order_by("created_at"),
        },
        status=status,
    )


@login_required
@require_POST
def view_new_version(request, pk):
    """Save the view's filters, additions and exclusions as a new version (the service
    returns the latest version instead when nothing changed)."""
    view = get_object_or_404(_views(request), pk=pk)
    versions = list(view.versions.order_by("-number"))
    latest = versions[0]
    form = ViewVersionForm(request.POST, version=latest, episodes=_episodes(request))
    if form.is_valid():
        try:
            version = datasets.create_view_version(
                actor=request.user,
                view=view,
                filters=form.version_filters(),
                includes=form.cleaned_data["includes"],
                excludes=form.cleaned_data["excludes"],
                trims=latest.trims,
                episode_metadata=latest.episode_metadata,
            )
        except DomainError as exc:
            if "includes" in exc.fields:  # the ids that are not ready episodes of the team
                form.add_error("includes", f"{exc.detail} Not: {', '.join(exc.fields['includes'])}")
            else:
                show_refusal(form, exc)
        else:
            if version.pk == latest.pk:
                messages.info(request, f"Nothing changed: v{latest.number} stays the latest.")
            else:
                messages.success(
                    request,
                    f"Saved v{version.number}: {len(version.episode_ids)} episodes.",
                )
            return redirect("teleop:view", view.pk)
    return _view_page(request, view, versions, version_form=form, status=400)


@login_required
@require_POST
def view_archive(request, pk):
    """Archive (`archive=1`) or unarchive (`archive=0`) a view."""
    view = get_object_or_404(_views(request), pk=pk)
    archive = request.POST.get("archive") != "0"
    try:
        if archive:
            datasets.archive_view(actor=request.user, view=view)
            messages.success(request, f"Archived '{view.name}': it is left out of the list.")
        else:
            datasets.unarchive_view(actor=request.user, view=view)
            messages.success(request, f"'{view.name}' is back in the list.")
    except DomainError as exc:
        _fail(request, exc)
    return redirect("teleop:view", view.pk)


@login_required
@require_POST
def export_delete(request, pk):
    """Delete an export and its file. Deleting cannot be undone: a POST without
    `confirm=yes` deletes nothing and answers a page that asks."""
    export = get_object_or_404(
        DatasetExport.objects.filter(view_version__view__in=_views(request)).select_related(
            "view_version__view"
        ),
        pk=pk,
    )
    view = export.view_version.view
    if request.POST.get("confirm") != "yes":
        return render(request, "teleop/export_delete_confirm.html", {"export": export})
    try:
        datasets.delete_export(actor=request.user, export=export)
        messages.success(request, "Export deleted, with its file.")
    except DomainError as exc:
        _fail(request, exc)
    return redirect("teleop:view", view.pk)


@login_required
def view_exports(request, pk):
    """The exports table, polled while an export is being built."""
    view = get_object_or_404(_views(request), pk=pk)
    exports = DatasetExport.objects.filter(view_version__view=view).select_related("view_version")
    may_author = rights.may(request.user, rights.Right.AUTHOR, view.team_id)
    return render(
        request,
        "teleop/_exports.html",
        {"view": view, "exports": exports, "may_author": may_author},
    )


@login_required
def export_download(request, pk):
    export = get_object_or_404(
        DatasetExport.objects.filter(view_version__view__in=_views(request)),
        pk=pk,
        state=DatasetExport.State.DONE,
    )
    return file_serving.serve_file(
        export.file,
        filename=datasets.export_filename(export),
        content_type=datasets.export_content_type(export),
    )


# --- Collection protocols -----------------------------------------------------------------


@login_required
def protocol_list(request):
    """The protocols a person sees (`access.visible`), with their targets."""
    protocols = access.visible(
        CollectionProtocol.objects.select_related("team", "task_version__task").prefetch_related(
            Prefetch("targets", queryset=ProtocolTarget.objects.select_related("condition"))
        ),
        request.user,
    ).order_by("-active", "name")
    may_author = rights.teams_where(request.user, rights.Right.AUTHOR).exists()
    return render(
        request, "teleop/protocol_list.html", {"protocols": protocols, "may_author": may_author}
    )


@login_required
def protocol_new(request):
    """A protocol: task version, condition targets, quality gates, sharing. The service's
    refusals are shown beside the fields (targets under the targets table); nothing is
    stored then."""
    if not rights.teams_where(request.user, rights.Right.AUTHOR).exists():
        raise PermissionDenied("Only an admin or researcher of a team defines protocols.")
    data = request.POST if request.method == "POST" else None
    # ?task_version=<id> (the task page's "New protocol for vN") chooses that version.
    form = ProtocolForm(
        data, user=request.user, initial={"task_version": request.GET.get("task_version")}
    )
    targets = ProtocolTargetFormSet(data, prefix="targets", form_kwargs={"user": request.user})
    target_errors: list[str] = []
    if data is not None and form.is_valid() and targets.is_valid():
        try:
            protocol = protocol_services.create_protocol(
                actor=request.user, targets=protocol_targets(targets), **form.cleaned_data
            )
        except DomainError as exc:
            target_errors = list(exc.fields.get("targets", []))
            others = {k: v for k, v in exc.fields.items() if k != "targets"}
            if others or not target_errors:
                show_refusal(form, type(exc)(exc.detail, fields=others))
        else:
            messages.success(request, f"Protocol '{protocol.name}' created.")
            return redirect("teleop:protocols")
    failed = data is not None and (form.errors or not targets.is_valid() or target_errors)
    return render(
        request,
        "teleop/protocol_new.html",
        {
            "form": form,
            "targets": targets,
            "target_errors": target_errors,
            "cameras_by_version": form.cameras_by_version,
        },
        status=400 if failed else 200,
    )
