"""Every page, swept: anonymous visitors reach only sign-in and public leaderboards, a person of
another team gets a 404 for team a's private objects, a member gets the page. A new page
without a row here fails `test_every_page_is_in_the_sweep`."""

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver

from core.models import Visibility
from core.services import conditions, data_requests, operators
from evaluation.services import trials
from teleop import datasets
from teleop.services import sessions
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
)
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db

# name -> (path template, whether an anonymous visitor may GET it)
PAGES = {
    "home": ("/", False),
    "teleop:session-new": ("/teleop/", False),
    "teleop:session": ("/teleop/sessions/{session}/", False),
    "teleop:session-episodes": ("/teleop/sessions/{session}/episodes", False),
    "teleop:episodes": ("/episodes/", False),
    "teleop:episode": ("/episodes/{episode}/", False),
    "teleop:viewer": ("/episodes/{episode}/viewer", False),
    "teleop:episode-file": ("/episodes/{episode}/file.h5", False),
    "teleop:views": ("/datasets/", False),
    "teleop:view": ("/datasets/{view}/", False),
    "teleop:view-exports": ("/datasets/{view}/exports", False),
    "teleop:export-download": ("/exports/{export}/download", False),
    "campaigns": ("/campaigns/", False),
    "campaign": ("/campaigns/{campaign}/", False),
    "campaign-new": ("/campaigns/new", False),
    "campaign-plan": ("/campaigns/plan", False),
    "campaign-start-confirm": ("/campaigns/{campaign}/start", False),
    "campaign-finish-confirm": ("/campaigns/{campaign}/finish", False),
    "campaign-unblind-confirm": ("/campaigns/{campaign}/unblind", False),
    "policies": ("/policies/", False),
    "policy-new": ("/policies/new", False),
    "policy-version-new": ("/policies/{policy}/versions/new", False),
    "benchmarks": ("/benchmarks/", False),
    "benchmark-new": ("/benchmarks/new", False),
    "benchmark": ("/benchmarks/{benchmark}/", False),
    "benchmark-publish-confirm": ("/benchmarks/{benchmark}/publish", False),
    "trial": ("/trials/{trial}/", False),
    "data-requests": ("/data-requests/", False),
    "data-request-rows": ("/data-requests/rows", False),
    "data-request-download": ("/data-requests/{data_request}/download", False),
    "my-data": ("/me/data", False),
    "consent-withdraw": ("/operators/{operator}/withdraw-consent", False),
    "leaderboards": ("/leaderboards/", True),
    "leaderboard": ("/leaderboards/{benchmark}/", True),
    "leaderboard-compare": ("/leaderboards/{benchmark}/compare", True),
    "tasks": ("/tasks/", False),
    "task-new": ("/tasks/new", False),
    "task": ("/tasks/{task}/", False),
    "task-edit": ("/tasks/{task}/edit", False),
    "conditions": ("/conditions/", False),
    "teleop:criteria-episodes": ("/tasks/criteria/episodes", False),
    "robots:list": ("/robots/", False),
    "robots:new": ("/robots/new", False),
    "robots:embodiment-new": ("/robots/embodiments/new", False),
    "robots:detail": ("/robots/{robot}/", False),
    "robots:key-revoke": ("/robots/keys/{key}/revoke", False),
    "teleop:protocols": ("/protocols/", False),
    "teleop:protocol-new": ("/protocols/new", False),
}
# Write-only endpoints (POST): anonymous callers are sent to sign in, outsiders get a 404.
ACTIONS = {
    "teleop:session-close": "/teleop/sessions/{session}/close",
    "teleop:episode-label": "/episodes/{episode}/label",
    "teleop:episode-discard": "/episodes/{episode}/discard",
    "teleop:view-save": "/datasets/save",
    "teleop:view-new-version": "/datasets/{view}/versions",
    "teleop:view-archive": "/datasets/{view}/archive",
    "teleop:export-delete": "/exports/{export}/delete",
    "campaign-next-trial": "/campaigns/{campaign}/robots/{robot}/next",
    "criteria-validate": "/tasks/criteria/validate",
    "teleop:criteria-dry-run": "/tasks/criteria/dry-run",
    "condition-delete": "/conditions/{condition}/delete",
    "robots:key-new": "/robots/{robot}/keys",
}
# Reached with a signed link instead of a session; tested in tests/teleop/test_views.py.
SIGNED = {"teleop:recording"}


def _names(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace in ("admin", "api", "v1", "djdt"):
                continue
            space = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            yield from _names(entry.url_patterns, space)
        elif isinstance(entry, URLPattern) and entry.name:
            yield prefix + entry.name


def test_every_page_is_in_the_sweep():
    from core import data_request_urls
    from core.pages import robot_urls
    from core.pages import urls as core_page_urls
    from evaluation import urls as evaluation_urls
    from teleop import urls as teleop_urls

    names = (
        set(_names(evaluation_urls.urlpatterns))
        | set(_names(data_request_urls.urlpatterns))
        | set(_names(core_page_urls.urlpatterns))
        | {f"robots:{name}" for name in _names(robot_urls.urlpatterns)}
        | {f"teleop:{name}" for name in _names(teleop_urls.urlpatterns)}
    )
    assert names - set(PAGES) - set(ACTIONS) - SIGNED == set()


@pytest.fixture
def objects(world):
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team, code="OP-S")
    session = sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )
    episode = ready_episode_row(session)
    view = datasets.create_view(
        actor=world.a.researcher, team=world.a.team, name="sweep", includes=[str(episode.pk)]
    )
    export = datasets.start_export(
        actor=world.a.researcher, version=view.versions.get(), format="robomimic"
    )
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version])  # private, blinded
    trial = trials.next_trial_for_robot(
        actor=world.a.operator, campaign=campaign, robot=world.a.robot
    )
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        visibility=Visibility.PRIVATE,
    )
    public = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        visibility=Visibility.PUBLIC,
    )
    condition = conditions.create_condition(
        actor=world.a.researcher,
        team=world.a.team,
        factor="sweep",
        level="private",
        visibility=Visibility.PRIVATE,
    )
    data_request = data_requests.request_access(actor=world.a.admin, operator=operator)
    return {
        "operator": operator.pk,
        "data_request": data_request.pk,
        "task": world.a.private_task.pk,
        "condition": condition.pk,
        "session": session.pk,
        "episode": episode.pk,
        "view": view.pk,
        "export": export.pk,
        "campaign": campaign.pk,
        "trial": trial.pk,
        "policy": version.policy_id,
        "robot": world.a.robot.pk,
        "key": world.a.robot.api_keys.get().pk,
        "benchmark": benchmark.pk,
        "public": public.pk,
    }


def _as(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_anonymous_visitors_reach_only_sign_in_and_public_leaderboards(objects):
    client = _as()
    for name, (template, public) in PAGES.items():
        ids = dict(objects, benchmark=objects["public"]) if public else objects
        response = client.get(template.format(**ids))
        if public:
            assert response.status_code == 200, name
        else:
            assert response.status_code == 302, name
            assert response["Location"].startswith("/accounts/login/"), name
    assert client.get(f"/leaderboards/{objects['benchmark']}/").status_code == 404
    assert client.get("/accounts/login/").status_code == 200
    for name, template in ACTIONS.items():
        response = client.post(template.format(**objects))
        assert response.status_code == 302, name
        assert response["Location"].startswith("/accounts/login/"), name


def test_another_team_gets_404_for_team_a_objects(world, objects):
    client = _as(world.b.admin)
    for name, (template, _public) in PAGES.items():
        if "{" not in template:
            continue
        response = client.get(template.format(**objects))
        assert response.status_code == 404, name
    for name, template in ACTIONS.items():
        if "{" in template:
            assert client.post(template.format(**objects)).status_code == 404, name


def test_team_members_get_every_page(world, objects):
    client = _as(world.a.admin)
    for name, (template, _public) in PAGES.items():
        response = client.get(template.format(**objects))
        # An export not built yet, an episode row with no stored file: nothing to download.
        expected = 404 if name in ("teleop:export-download", "teleop:episode-file") else 200
        if name == "data-request-download":
            expected = 409  # the archive is still being built
        assert response.status_code == expected, name


class _Fields(HTMLParser):
    """Form fields of a page and whether each has a label: a <label for=...>, an enclosing
    <label>, or an aria-label."""

    def __init__(self):
        super().__init__()
        self.fields, self.label_for, self.open_labels = [], set(), 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag in ("input", "select", "textarea"):
            if attrs.get("type") in ("hidden", "submit", "button"):
                return
            labelled = self.open_labels > 0 or bool(attrs.get("aria-label"))
            self.fields.append((tag, attrs.get("name"), attrs.get("id"), labelled))

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels = max(0, self.open_labels - 1)

    def unlabelled(self):
        return [
            (tag, name)
            for tag, name, id_, labelled in self.fields
            if not labelled and id_ not in self.label_for
        ]


def test_every_form_field_on_every_page_has_a_label(world, objects):
    client = _as(world.a.admin)
    pages = [template.format(**objects) for template, _ in PAGES.values()]
    pages += ["/accounts/login/", f"/leaderboards/{objects['public']}/compare"]
    checked = 0
    for path in pages:
        response = client.get(path)
        if response.status_code != 200 or "html" not in response["Content-Type"]:
            continue
        fields = _Fields()
        fields.feed(response.content.decode())
        assert fields.unlabelled() == [], path
        checked += len(fields.fields)
    assert checked > 30  # the sweep saw the forms (session, filters, scoring, exports...)


@pytest.fixture(scope="module")
def manifest_static_root(tmp_path_factory, django_db_blocker):
    """Static files collected the way production collects them (DEBUG off: WhiteNoise's
    compressed manifest storage). A vendored file naming a missing source map made this fail,
    and then every page was a 500."""
    from django.core.management import call_command
    from django.test import override_settings

    root = tmp_path_factory.mktemp("static")
    with override_settings(STATIC_ROOT=root, STORAGES=_production_storages()):
        call_command("collectstatic", interactive=False, verbosity=0)
    return root


def _production_storages():
    from django.conf import settings

    return {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }


def test_every_page_renders_with_production_static_files(world, objects, manifest_static_root):
    from django.test import override_settings

    pages = [template.format(**objects) for template, _ in PAGES.values()]
    pages += ["/accounts/login/", "/admin/login/", f"/leaderboards/{objects['public']}/compare"]
    with override_settings(
        DEBUG=False, STATIC_ROOT=manifest_static_root, STORAGES=_production_storages()
    ):
        client = _as(world.a.admin)
        for path in pages:
            response = client.get(path)
            expected = 404 if path.endswith(("/download", "/file.h5")) else 200
            if path.startswith("/data-requests/") and path.endswith("/download"):
                expected = 409  # the archive is still being built
            assert response.status_code == expected, path
            if "html" in response["Content-Type"]:
                # Hashed names from the manifest, so caches can keep them forever.
                assert "/static/core/app.css" not in response.content.decode(), path
