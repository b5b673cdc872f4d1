"""Pages of operators' data rights (docs/privacy.md): "Data requests" for team admins (ask
for an operator's access archive, follow its build, download it once; record a withdrawal
of consent) and "My data" for a signed-in operator (the same for themselves).

Thin: forms validate, services write. An operator of a team one is not in is a 404.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from core import access, rights
from core.archive_download import archive_response
from core.errors import DomainError
from core.models import Operator, OperatorIdentity
from core.services import consent, data_requests


def _managed_operators(user):
    return Operator.objects.filter(
        team__in=rights.teams_where(user, rights.Right.MANAGE)
    ).select_related("team", "identity")


class AccessRequestForm(forms.Form):
    operator = forms.ModelChoiceField(queryset=Operator.objects.none(), to_field_name="code")
    include_files = forms.BooleanField(
        required=False,
        label="Include the episode files (HDF5; can be large)",
    )

    def __init__(self, *args, operators, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["operator"].queryset = operators
        self.fields["operator"].label_from_instance = _operator_choice


def _operator_choice(operator: Operator) -> str:
    # Admins of the team may read the identity (docs/privacy.md, where each kind may flow).
    try:
        name = operator.identity.full_name
    except OperatorIdentity.DoesNotExist:
        name = ""
    return (
        f"{operator.code} ({name}, {operator.team})"
        if name
        else f"{operator.code} ({operator.team})"
    )


def _ask(request, form: AccessRequestForm, operator: Operator) -> bool:
    try:
        data_requests.request_access(
            actor=request.user,
            operator=operator,
            include_files=form.cleaned_data["include_files"],
        )
    except DomainError as exc:
        form.add_error(None, exc.detail)
        return False
    messages.success(
        request,
        f"The archive of {operator.code} is being built; download it here once it is ready "
        "(once: the file is deleted after the download).",
    )
    return True


@login_required
def data_requests_page(request):
    """Team admins: ask for an operator's archive, follow the builds, download."""
    operators = _managed_operators(request.user)
    if not rights.teams_where(request.user, rights.Right.MANAGE).exists():
        raise PermissionDenied("Data requests are answered by the admins of a team.")
    initial = {"operator": request.GET.get("operator")} if request.GET.get("operator") else None
    form = AccessRequestForm(request.POST or None, operators=operators, initial=initial)
    if request.method == "POST" and form.is_valid():
        if _ask(request, form, form.cleaned_data["operator"]):
            return redirect("data-requests")
    return render(
        request,
        "core/data_requests.html",
        {
            "form": form,
            "requests": data_requests.visible_requests(request.user),
            "operators": operators,
        },
        status=400 if request.method == "POST" else 200,
    )


def _own_operator(user) -> Operator | None:
    return Operator.objects.filter(user=user).select_related("team").first()


@login_required
def my_data(request):
    """The signed-in operator: what is held, an archive of it, consent."""
    operator = _own_operator(request.user)
    form = AccessRequestForm(
        request.POST or None,
        operators=Operator.objects.filter(pk=operator.pk) if operator else Operator.objects.none(),
        initial={"operator": operator.code} if operator else None,
    )
    if request.method == "POST":
        if operator is None:
            raise PermissionDenied("Your account is not linked to an operator code.")
        if form.is_valid() and _ask(request, form, operator):
            return redirect("my-data")
    identity = OperatorIdentity.objects.filter(operator=operator).first() if operator else None
    return render(
        request,
        "core/my_data.html",
        {
            "operator": operator,
            "identity": identity,
            "form": form,
            "requests": data_requests.visible_requests(request.user).filter(
                operator__user=request.user
            ),
            "manages": rights.teams_where(request.user, rights.Right.MANAGE).exists(),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
def data_request_rows(request):
    """The requests table, polled while an archive is built (`?mine=1`: about oneself)."""
    requests = data_requests.visible_requests(request.user)
    if request.GET.get("mine"):
        requests = requests.filter(operator__user=request.user)
    return render(request, "core/_data_request_rows.html", {"requests": requests})


@login_required
def data_request_download(request, pk):
    made = get_object_or_404(data_requests.visible_requests(request.user), pk=pk)
    try:
        data_requests.claim_download(actor=request.user, request=made)
    except DomainError as exc:
        return HttpResponse(exc.detail, status=exc.status, content_type="text/plain; charset=utf-8")
    return archive_response(made)


@login_required
def consent_withdraw(request, operator_pk):
    """Withdrawing an operator's consent, for themselves or by an admin of its team: a
    confirmation page first (it cannot be undone: no new export will hold their episodes)."""
    operator = get_object_or_404(
        access.in_my_teams(Operator.objects.select_related("team"), request.user),
        pk=operator_pk,
    )
    if not consent.may_act_for(request.user, operator):
        raise PermissionDenied("Only the operator or an admin of its team may do this.")
    back = "my-data" if operator.user_id == request.user.pk else "data-requests"
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        try:
            consent.withdraw_consent(actor=request.user, operator=operator)
            messages.success(
                request,
                f"Consent of {operator.code} withdrawn: no new export will hold its episodes.",
            )
        except DomainError as exc:
            messages.error(request, exc.detail)
        return redirect(back)
    return render(
        request,
        "core/consent_withdraw_confirm.html",
        {"operator": operator, "back": back},
    )
