"""Evaluation API: policies, benchmarks, campaigns, trials, leaderboards. Thin views: input
serializer validates, one service or selector call, output serializer answers.

Who may do what: admins and researchers of a team create its policies, benchmarks and
campaigns (the services check); operators and admins score trials; a robot asks for its own
next trial and reports only its own trials. Objects of other teams are 404s. Anonymous callers
read public benchmarks and their leaderboards, nothing else.
"""

import csv
import io

from django.db.models import Prefetch
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import exceptions, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from core import access
from core.api.idempotency import idempotent
from core.api.permissions import IsPerson
from evaluation import selectors
from evaluation.api import serializers as s
from evaluation.models import (
    Benchmark,
    BenchmarkCell,
    Campaign,
    CampaignCell,
    LeaderboardSnapshot,
    Policy,
    PolicyVersion,
    Trial,
    TrialReport,
)
from evaluation.services import benchmarks, leaderboards, policies
from evaluation.services import campaigns as campaign_services
from evaluation.services import trials as trial_services
from proving_ground import scheduling
from teleop.models import Episode


class ReadPublicWritePeople(permissions.BasePermission):
    """Anyone reads (the queryset shows anonymous callers public objects only); only people
    write, and the services check their roles."""

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        user = request.user
        return bool(user and user.is_authenticated) and not access.is_robot(user)


class _EvaluationViewSet(viewsets.GenericViewSet):
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _input(self, serializer_class, data=None):
        serializer = serializer_class(
            data=self.request.data if data is None else data,
            context=self.get_serializer_context(),
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def _params(self, serializer_class):
        return self._input(serializer_class, data=self.request.query_params.dict())

    def _page(self, queryset, output, **context):
        page = self.paginate_queryset(queryset)
        data = output(page, many=True, context=self.get_serializer_context() | context).data
        return self.get_paginated_response(data)


def _team_filtered(queryset, params):
    team = params.get("team")
    return queryset.filter(team__slug=team) if team else queryset


# --- Policies -------------------------------------------------------------------------------


def _policies():
    return Policy.objects.select_related("team").prefetch_related(
        "shared_with", Prefetch("versions", queryset=PolicyVersion.objects.order_by("-created_at"))
    )


@extend_schema_view(
    create=extend_schema(request=s.PolicyIn, responses={201: s.PolicyOut}),
    partial_update=extend_schema(request=s.PolicyPatch, responses=s.PolicyOut),
)
class PolicyViewSet(_EvaluationViewSet):
    """Policies the caller can see. Robots never list policies: they learn only what to
    load, trial by trial."""

    permission_classes = [IsPerson]
    serializer_class = s.PolicyOut

    def get_queryset(self):
        return access.visible(_policies(), self.request.user)

    @extend_schema(parameters=[OpenApiParameter("team", str)])
    def list(self, request):
        params = self._params(s.TeamParams)
        params.pop("status", None)
        return self._page(_team_filtered(self.get_queryset(), params), s.PolicyOut)

    def retrieve(self, request, pk=None):
        return Response(s.PolicyOut(self.get_object()).data)

    @idempotent
    def create(self, request):
        data = self._input(s.PolicyIn)
        policy = policies.create_policy(actor=request.user, **data)
        return Response(
            s.PolicyOut(self.get_queryset().get(pk=policy.pk)).data, status=status.HTTP_201_CREATED
        )

    def partial_update(self, request, pk=None):
        policy = self.get_object()
        data = self._input(s.PolicyPatch)
        policies.update_policy(actor=request.user, policy=policy, **data)
        return Response(s.PolicyOut(self.get_queryset().get(pk=policy.pk)).data)

    @extend_schema(methods=["GET"], responses=s.PolicyVersionOut(many=True))
    @extend_schema(methods=["POST"], request=s.PolicyVersionIn, responses={201: s.PolicyVersionOut})
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    @idempotent
    def versions(self, request, pk=None):
        """A policy's versions, newest first (all of them, one array); POST adds one (versions
        are immutable)."""
        policy = self.get_object()
        if request.method == "GET":
            return Response(s.PolicyVersionOut(policy.versions.all(), many=True).data)
        data = self._input(s.PolicyVersionIn)
        version = policies.create_policy_version(actor=request.user, policy=policy, **data)
        return Response(s.PolicyVersionOut(version).data, status=status.HTTP_201_CREATED)


# --- Leaderboards (shared by benchmarks and campaigns) --------------------------------------


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


_CSV_V2_COLUMNS = (
    "invalid_rate",
    "invalid_flagged",
    "posterior_mean",
    "credible_low",
    "credible_high",
    "p_best",
    "pass3",
)


def _leaderboard_csv(data: dict, filename: str) -> HttpResponse:
    """One line per policy: the headline figures, then k, n and rate per task and per
    condition."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    named = not data.get("blinded")
    head = ["rank", "rank_low", "rank_high"]
    head += ["policy", "version", "policy_version"] if named else ["alias"]
    head += ["macro", "macro_low", "macro_high", "letters", "successes", "trials", "rate"]
    head += ["rate_low", "rate_high", "invalid", "remaining", "mean_stage_score"]
    head += ["worst_condition", "worst_low", "worst_high"]
    # pg-score/2 boards carry more per row (invalid-trial rates, the Bayesian view, pass^3);
    # a pg-score/1 board's CSV keeps exactly its columns.
    extras = [key for key in _CSV_V2_COLUMNS if data["rows"] and key in data["rows"][0]]
    head += extras
    tasks = {t["id"]: t["label"] for t in data["tasks"]}
    conditions = {c["id"]: c["label"] for c in data["conditions"]}
    for label in [*tasks.values(), *conditions.values()]:
        head += [f"{label} k", f"{label} n", f"{label} rate"]
    writer.writerow(head)
    for row in data["rows"]:
        worst = row.get("worst_condition") or {}
        line = [row["rank"], row["rank_low"], row["rank_high"]]
        line += [row["policy"], row["version"], row["policy_version"]] if named else [row["alias"]]
        line += [row["macro"], row["macro_low"], row["macro_high"], row["letters"]]
        line += [row["successes"], row["trials"], row["rate"], row["low"], row["high"]]
        line += [row["invalid"], row["remaining"], row["mean_stage_score"]]
        line += [conditions.get(worst.get("condition"), ""), worst.get("low"), worst.get("high")]
        line += [row.get(key) for key in extras]
        for cell in [*row["tasks"], *row["conditions"]]:
            line += [cell["successes"], cell["trials"], cell["rate"]]
        writer.writerow([_fmt(value) for value in line])
    response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Benchmarks -----------------------------------------------------------------------------


def _benchmarks():
    cells = BenchmarkCell.objects.select_related("task_version__task", "condition")
    return Benchmark.objects.select_related("team").prefetch_related(
        "shared_with", Prefetch("cells", queryset=cells)
    )


@extend_schema_view(
    create=extend_schema(request=s.BenchmarkIn, responses={201: s.BenchmarkOut}),
    partial_update=extend_schema(request=s.BenchmarkPatch, responses=s.BenchmarkOut),
)
class BenchmarkViewSet(_EvaluationViewSet):
    """Benchmarks; public ones (and their leaderboards) are readable without signing in."""

    permission_classes = [ReadPublicWritePeople]
    serializer_class = s.BenchmarkOut

    def get_queryset(self):
        return access.visible(_benchmarks(), self.request.user)

    @extend_schema(parameters=[OpenApiParameter("team", str)])
    def list(self, request):
        params = self._params(s.TeamParams)
        params.pop("status", None)
        page = self.paginate_queryset(_team_filtered(self.get_queryset(), params))
        # Which task versions and conditions the caller may not see: one ask for the page.
        cells = [cell for benchmark in page for cell in benchmark.cells.all()]
        hidden = selectors.hidden_design_ids(
            request.user,
            [cell.task_version_id for cell in cells],
            [cell.condition_id for cell in cells],
        )
        context = self.get_serializer_context() | {"hidden_design": hidden}
        return self.get_paginated_response(s.BenchmarkOut(page, many=True, context=context).data)

    def retrieve(self, request, pk=None):
        return Response(
            s.BenchmarkOut(self.get_object(), context=self.get_serializer_context()).data
        )

    @idempotent
    def create(self, request):
        data = self._input(s.BenchmarkIn)
        benchmark = benchmarks.create_benchmark(actor=request.user, **data)
        return Response(
            s.BenchmarkOut(
                self.get_queryset().get(pk=benchmark.pk), context=self.get_serializer_context()
            ).data,
            status=status.HTTP_201_CREATED,
        )

    def partial_update(self, request, pk=None):
        benchmark = self.get_object()
        data = self._input(s.BenchmarkPatch)
        benchmarks.update_benchmark(actor=request.user, benchmark=benchmark, **data)
        return Response(
            s.BenchmarkOut(
                self.get_queryset().get(pk=benchmark.pk), context=self.get_serializer_context()
            ).data
        )

    @extend_schema(request=None, responses=s.BenchmarkOut)
    @action(detail=True, methods=["post"])
    @idempotent
    def publish(self, request, pk=None):
        """Freeze the benchmark's design (cells, trials per cell, scoring) so campaigns can
        run on it."""
        benchmark = benchmarks.publish_benchmark(actor=request.user, benchmark=self.get_object())
        return Response(
            s.BenchmarkOut(
                self.get_queryset().get(pk=benchmark.pk), context=self.get_serializer_context()
            ).data
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"], permission_classes=[AllowAny])
    def leaderboard(self, request, pk=None):
        """The leaderboard over the finished campaigns pooled on this benchmark (the latest
        snapshot). No personal data."""
        benchmark = self.get_object()
        return Response(
            leaderboards.leaderboard_data(
                LeaderboardSnapshot.Scope.BENCHMARK, benchmark, reader=request.user
            )
        )

    @extend_schema(responses={(200, "text/csv"): str})
    @action(
        detail=True, methods=["get"], permission_classes=[AllowAny], url_path=r"leaderboard\.csv"
    )
    def leaderboard_csv(self, request, pk=None):
        """The leaderboard as CSV: one line per policy version."""
        benchmark = self.get_object()
        data = leaderboards.leaderboard_data(
            LeaderboardSnapshot.Scope.BENCHMARK, benchmark, reader=request.user
        )
        return _leaderboard_csv(data, f"leaderboard-{benchmark.pk}.csv")

    @extend_schema(
        parameters=[
            OpenApiParameter("policy_version", str),
            OpenApiParameter("task_version", str),
            OpenApiParameter("condition", str),
            OpenApiParameter("check_disagrees", bool),
        ],
        responses=s.CellTrialOut(many=True),
    )
    @action(
        detail=True,
        methods=["get"],
        permission_classes=[AllowAny],
        url_path="leaderboard/trials",
    )
    def leaderboard_trials(self, request, pk=None):
        """The trials behind the leaderboard, filtered to one row or cell (or to those whose
        automatic check disagrees with the outcome): every figure traces back to its
        trials."""
        benchmark = self.get_object()
        params = self._params(s.CellTrialsFilter)
        trials = selectors.readable_leaderboard_trials(benchmark, request.user).filter(
            **{
                k: v
                for k, v in params.items()
                if k in ("policy_version", "task_version", "condition", "check_disagrees")
            }
        )
        return self._page(trials.order_by("campaign_id", "order"), s.CellTrialOut)


# --- Campaigns ------------------------------------------------------------------------------


def _campaigns():
    cells = CampaignCell.objects.select_related("task_version__task", "condition")
    return Campaign.objects.select_related("team").prefetch_related(
        "shared_with",
        "robots",
        "operators",
        Prefetch("cells", queryset=cells),
        Prefetch("policy_versions", queryset=PolicyVersion.objects.select_related("policy")),
    )


def _aliases(campaign: Campaign) -> dict[str, str]:
    ids = [str(v.pk) for v in campaign.policy_versions.all()]
    return scheduling.alias_map(ids, campaign.seed) if ids else {}


@extend_schema_view(
    create=extend_schema(request=s.CampaignIn, responses={201: s.campaign_or_blind_out()}),
    retrieve=extend_schema(responses=s.campaign_or_blind_out()),
)
class CampaignViewSet(_EvaluationViewSet):
    """Campaigns. People see those visible to them; a robot sees the campaigns it runs in,
    blinded."""

    permission_classes = [IsAuthenticated]
    serializer_class = s.CampaignOut
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        actor = self.request.user
        if access.is_robot(actor):
            if self.action == "next_trial":
                # The robots' hot path reads no campaign relation: none of the prefetches
                # (50 robots, cells, policy versions...), five queries fewer.
                return Campaign.objects.filter(robots=actor.robot)
            return _campaigns().filter(robots=actor.robot)
        return access.visible(_campaigns(), actor)

    def _answer(self, campaign, status_code=status.HTTP_200_OK):
        blinded = selectors.is_blinded_for(self.request.user, campaign)
        output = s.BlindCampaignOut if blinded else s.CampaignOut
        context = self.get_serializer_context() | {"aliases": _aliases(campaign)}
        return Response(output(campaign, context=context).data, status=status_code)

    def _person_only(self):
        if access.is_robot(self.request.user):
            raise exceptions.PermissionDenied("This is for people, not robots.")

    @extend_schema(
        parameters=[OpenApiParameter("team", str), OpenApiParameter("status", str)],
        responses=s.campaign_or_blind_out(many=True),
    )
    def list(self, request):
        params = self._params(s.TeamParams)
        queryset = _team_filtered(self.get_queryset(), params)
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        page = self.paginate_queryset(queryset)
        selectors.prime_blinding(request.user, page)
        data = []
        for campaign in page:
            data.append(self._answer(campaign).data)
        return self.get_paginated_response(data)

    def retrieve(self, request, pk=None):
        return self._answer(self.get_object())

    @idempotent
    def create(self, request):
        self._person_only()
        data = self._input(s.CampaignIn)
        campaign = campaign_services.create_campaign(actor=request.user, **data)
        return self._answer(self.get_queryset().get(pk=campaign.pk), status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.campaign_or_blind_out())
    @action(detail=True, methods=["post"])
    @idempotent
    def start(self, request, pk=None):
        """Build the schedule from the stored seed and start handing out trials."""
        self._person_only()
        campaign = campaign_services.start_campaign(actor=request.user, campaign=self.get_object())
        return self._answer(self.get_queryset().get(pk=campaign.pk))

    @extend_schema(request=None, responses=s.campaign_or_blind_out())
    @action(detail=True, methods=["post"])
    @idempotent
    def finish(self, request, pk=None):
        """Stop early: no more trials are handed out."""
        self._person_only()
        campaign = campaign_services.finish_campaign(actor=request.user, campaign=self.get_object())
        return self._answer(self.get_queryset().get(pk=campaign.pk))

    @extend_schema(responses=s.ProgressOut)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        """Per cell: planned, done, invalid, held by a robot, remaining."""
        return Response(s.ProgressOut(selectors.campaign_progress(self.get_object())).data)

    @extend_schema(request=None, responses=s.NextTrialOut)
    @action(detail=True, methods=["post"], url_path="next-trial")
    @idempotent
    def next_trial(self, request, pk=None):
        """For the calling robot: the trial it holds, or its next one, with what to load and
        the condition to set up. Blinded campaigns name no policy, only its alias."""
        if not access.is_robot(request.user):
            raise exceptions.PermissionDenied("Only a robot asks for its next trial.")
        campaign = self.get_object()
        trial = trial_services.next_trial(actor=request.user, campaign=campaign)
        if trial is None:
            return Response(
                {"trial": None, "detail": "No trials left for this robot, or the campaign is done."}
            )
        context = self.get_serializer_context() | {
            "blinded": selectors.is_blinded_for(request.user, campaign)
        }
        return Response(
            {"trial": s.RobotTrialOut(trial, context=context).data, "detail": "Run this trial."}
        )

    def _campaign_board(self) -> tuple[Campaign, dict]:
        campaign = self.get_object()
        data = leaderboards.leaderboard_data(LeaderboardSnapshot.Scope.CAMPAIGN, campaign)
        if selectors.is_blinded_for(self.request.user, campaign):
            data = selectors.blinded_leaderboard(data)
        return campaign, data

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def leaderboard(self, request, pk=None):
        """The campaign's leaderboard (latest snapshot); aliases only for blinded viewers."""
        return Response(self._campaign_board()[1])

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=True, methods=["get"], url_path=r"leaderboard\.csv")
    def leaderboard_csv(self, request, pk=None):
        """The campaign's leaderboard as CSV (aliases only for blinded viewers)."""
        campaign, data = self._campaign_board()
        return _leaderboard_csv(data, f"campaign-{campaign.pk}.csv")

    @extend_schema(
        parameters=[OpenApiParameter("a", str), OpenApiParameter("b", str)],
        responses=s.ComparisonOut,
    )
    @action(detail=True, methods=["get"])
    def compare(self, request, pk=None):
        """Policy A vs B: the difference with Newcombe's interval and an exact test; in
        paired campaigns also McNemar's test and the sequential test's state. Blinded viewers
        name policies by alias."""
        campaign = self.get_object()
        params = self._params(s.CompareParams)
        blinded = selectors.is_blinded_for(request.user, campaign)
        aliases = _aliases(campaign)
        by_alias = {alias: pv for pv, alias in aliases.items()}
        chosen = []
        for key in ("a", "b"):
            given = params[key]
            version = by_alias.get(given) if (blinded or given in by_alias) else given
            if version not in aliases:
                raise exceptions.ValidationError(
                    {
                        key: [
                            "Not a policy of this campaign"
                            + (" (give its alias)." if blinded else ".")
                        ]
                    }
                )
            chosen.append(version)
        a, b = chosen
        if a == b:
            raise exceptions.ValidationError({"b": ["Compare two different policies."]})
        labels = [aliases[v] if blinded else v for v in chosen]
        result = selectors.compare_policies(
            Trial.objects.filter(campaign=campaign), a, b, a_label=labels[0], b_label=labels[1]
        )
        return Response(s.ComparisonOut(result).data)


# --- Trials ---------------------------------------------------------------------------------


class TrialViewSet(_EvaluationViewSet):
    """Trials: people see those of the campaigns visible to them (aliases only where they are
    blinded); a robot sees its own. `POST result` reports or corrects an outcome."""

    permission_classes = [IsAuthenticated]
    serializer_class = s.TrialOut
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        actor = self.request.user
        queryset = Trial.objects.select_related(
            "campaign__team", "policy_version__policy", "task_version", "robot", "operator"
        )
        if access.is_robot(actor):
            return queryset.filter(robot=actor.robot)
        return queryset.filter(campaign__in=access.visible(Campaign.objects.all(), actor))

    def _blinded_ids(self, trials) -> set:
        actor = self.request.user
        campaigns = {trial.campaign_id: trial.campaign for trial in trials}
        selectors.prime_blinding(actor, list(campaigns.values()))
        return {pk for pk, c in campaigns.items() if selectors.is_blinded_for(actor, c)}

    def _render(self, trials, many):
        items = trials if many else [trials]
        blinded = self._blinded_ids(items)
        out = [(s.BlindTrialOut if t.campaign_id in blinded else s.TrialOut)(t).data for t in items]
        return out if many else out[0]

    @extend_schema(
        parameters=[
            OpenApiParameter(name, str)
            for name in (
                "campaign",
                "state",
                "task_version",
                "condition",
                "robot",
                "alias",
                "policy_version",
            )
        ],
        responses=s.trial_or_blind_out(many=True),
    )
    def list(self, request):
        """Filter by campaign, state, task version, condition, robot or alias; by policy
        version only within one campaign the caller is not blinded in."""
        params = self._params(s.TrialFilter)
        queryset = self.get_queryset()
        if "policy_version" in params:
            campaign = Campaign.objects.filter(pk=params.get("campaign")).first()
            if campaign is None or selectors.is_blinded_for(request.user, campaign):
                raise exceptions.ValidationError(
                    {"policy_version": ["Filter by alias, within one campaign you can see."]}
                )
        for name in ("campaign", "state", "task_version", "condition", "robot", "alias"):
            if name in params:
                queryset = queryset.filter(**{name: params[name]})
        if "policy_version" in params:
            queryset = queryset.filter(policy_version=params["policy_version"])
        page = self.paginate_queryset(queryset.order_by("campaign_id", "order"))
        return self.get_paginated_response(self._render(page, many=True))

    @extend_schema(responses=s.trial_or_blind_out())
    def retrieve(self, request, pk=None):
        return Response(self._render(self.get_object(), many=False))

    @extend_schema(request=s.ResultIn, responses=s.trial_or_blind_out())
    @action(detail=True, methods=["post"])
    @idempotent
    def result(self, request, pk=None):
        """Report the trial's result (the robot that ran it, once) or enter/correct it (an
        operator or admin of the campaign's team; the history is kept)."""
        trial = self.get_object()
        data = self._input(s.ResultIn)
        episode = None
        if data.get("episode"):
            episode = Episode.objects.filter(pk=data["episode"], team_id=trial.campaign.team_id)
            episode = episode.select_related("task_version").first()
            if episode is None:
                raise exceptions.ValidationError({"episode": ["No such episode."]})
        trial = trial_services.report_trial_result(
            actor=request.user,
            trial=trial,
            outcome=data.get("outcome"),
            stages_reached=data.get("stages_reached"),
            failure_codes=data.get("failure_codes"),
            valid=data["valid"],
            invalid_reason=data.get("invalid_reason", ""),
            notes=data.get("notes", ""),
            episode=episode,
            operator_code=data.get("operator") or None,
        )
        return Response(self._render(trial, many=False))

    @extend_schema(responses=s.TrialReportOut(many=True))
    @action(detail=True, methods=["get"], permission_classes=[IsPerson], pagination_class=None)
    def reports(self, request, pk=None):
        """Every report and correction of the trial, newest first (one array)."""
        trial = self.get_object()
        reports = TrialReport.objects.filter(trial=trial).select_related(
            "operator", "reporter_robot"
        )
        return Response(s.TrialReportOut(reports, many=True).data)
