"""The operators page: a team admin's list of the team's operators (pseudonym, and the person
behind it: admins of the team may see identities, docs/privacy.md), the team's erasure
policy, and erasing an operator (the right to be forgotten) after a page that says exactly
what will happen.

Only admins of a team (`rights.Right.MANAGE`) see its operators here; an operator of any
other team is a 404, as if it did not exist.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core import rights
from core.errors import DomainError
from core.models import Operator, Team
from core.services import erasure

MAX_QUERY_CHARS = 200


class OperatorSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=MAX_QUERY_CHARS,
        label="Search",
        help_text="Part of a code, a name or an e-mail address (any case).",
    )


class ErasedEpisodesForm(forms.Form):
    erased_episodes = forms.ChoiceField(
        choices=Team.ErasedEpisodes.choices,
        widget=forms.RadioSelect,
        label="When an operator is erased, its episodes are",
    )


def _managed_teams(user):
    return rights.teams_where(user, rights.Right.MANAGE)


def _operators(user):
    return Operator.objects.filter(team__in=_managed_teams(user)).select_related(
        "team", "user", "identity"
    )


@login_required
def operator_list(request):
    teams = list(_managed_teams(request.user))
    if not teams:
        raise PermissionDenied("Only a team admin sees the team's operators.")
    search = OperatorSearchForm(request.GET or None)
    rows = _operators(request.user)
    query = search.cleaned_data["q"].strip() if search.is_valid() else ""
    if query:
        rows = rows.filter(
            Q(code__icontains=query)
            | Q(identity__full_name__icontains=query)
            | Q(identity__email__icontains=query)
            | Q(user__username__icontains=query)
        )
    policies = [
        (team, ErasedEpisodesForm(initial={"erased_episodes": team.erased_episodes}))
        for team in teams
    ]
    return render(
        request,
        "core/operators.html",
        {
            "operators": rows.order_by("team__name", "code"),
            "search": search,
            "query": query,
            "policies": policies,
        },
    )


@login_required
@require_POST
def erased_episodes(request, team_pk):
    team = get_object_or_404(_managed_teams(request.user), pk=team_pk)
    form = ErasedEpisodesForm(request.POST)
    if form.is_valid():
        erasure.set_erased_episodes(
            actor=request.user, team=team, policy=form.cleaned_data["erased_episodes"]
        )
        messages.success(request, f"{team}: erasing an operator now {_policy_text(team)}.")
    else:
        messages.error(request, "Choose keep or delete.")
    return redirect("operators:list")


def _policy_text(team: Team) -> str:
    team.refresh_from_db(fields=["erased_episodes"])
    if team.erased_episodes == Team.ErasedEpisodes.DELETE:
        return "deletes its episodes"
    return "keeps its episodes under the pseudonym"


@never_cache
@login_required
def operator_erase(request, pk):
    """GET: what erasing this operator will do, and a form that asks to type its code. POST
    with the code typed: erase (`erasure.erase_operator`); anything else changes nothing and
    answers the page again."""
    operator = get_object_or_404(_operators(request.user), pk=pk)
    identity = getattr(operator, "identity", None)
    typed = request.POST.get("confirm", "").strip() if request.method == "POST" else ""
    if request.method == "POST" and typed == operator.code:
        try:
            steps = erasure.erase_operator(actor=request.user, operator=operator)
        except DomainError as exc:
            messages.error(request, f"{operator.code}: {exc.detail}")
            return redirect("operators:erase", pk=operator.pk)
        done = "; ".join(f"{s.what}: {s.count} {s.outcome}" for s in steps)
        messages.success(request, f"{operator.code} erased. {done}.")
        return redirect("operators:list")
    refusal = ""
    try:
        steps = erasure.plan_erasure(actor=request.user, operator=operator)
    except DomainError as exc:
        steps, refusal = [], exc.detail
    return render(
        request,
        "core/operator_erase.html",
        {
            "operator": operator,
            "has_identity": identity is not None,
            "has_account": operator.user_id is not None,
            "steps": steps,
            "refusal": refusal,
            "keeps_episodes": operator.team.erased_episodes == Team.ErasedEpisodes.KEEP,
            "mistyped": request.method == "POST",
        },
        status=400 if request.method == "POST" else 200,
    )
