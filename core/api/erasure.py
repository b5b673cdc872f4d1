"""Erasing an operator over the API: what it would do, and doing it once confirmed
(docs/privacy.md, "Erasure"; docs/api.md)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core import access
from core.api.permissions import IsPerson
from core.api.serializers import StrictInputSerializer
from core.errors import InvalidInput
from core.models import Operator, Team
from core.services import erasure


class ErasureIn(StrictInputSerializer):
    confirm = serializers.CharField(
        max_length=40, help_text="The operator's code, typed again: nothing happens without it."
    )


class ErasureStepOut(serializers.Serializer):
    what = serializers.CharField()
    count = serializers.IntegerField(min_value=0)
    outcome = serializers.CharField()


class ErasureOut(serializers.Serializer):
    operator = serializers.CharField(help_text="The pseudonym (it stays).")
    episodes = serializers.ChoiceField(
        choices=Team.ErasedEpisodes.choices,
        help_text="The team's policy for the operator's episodes.",
    )
    erased = serializers.BooleanField(help_text="False: a preview; true: done.")
    steps = ErasureStepOut(many=True)


def _answer(operator: Operator, steps, *, erased: bool) -> Response:
    body = {
        "operator": operator.code,
        "episodes": operator.team.erased_episodes,
        "erased": erased,
        "steps": [{"what": s.what, "count": s.count, "outcome": s.outcome} for s in steps],
    }
    return Response(ErasureOut(body).data)


class OperatorErasureView(APIView):
    """The right to be forgotten, for an admin of the operator's team. An operator of a team
    you are not in is a 404."""

    permission_classes = [IsPerson]

    def _operator(self, request, pk) -> Operator:
        operator = (
            access.in_my_teams(Operator.objects.select_related("team"), request.user)
            .filter(pk=pk)
            .first()
        )
        if operator is None:
            raise NotFound("No such operator.")
        return operator

    @extend_schema(responses=ErasureOut)
    def get(self, request, pk):
        """What erasing this operator would do now (nothing changes)."""
        operator = self._operator(request, pk)
        return _answer(
            operator, erasure.plan_erasure(actor=request.user, operator=operator), erased=False
        )

    @extend_schema(request=ErasureIn, responses=ErasureOut)
    def post(self, request, pk):
        """Erase the person behind the operator, confirmed by its code in `confirm`."""
        operator = self._operator(request, pk)
        data = ErasureIn(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["confirm"] != operator.code:
            raise InvalidInput(
                "Nothing was erased: send the operator's code in `confirm`.",
                fields={"confirm": [f"Type {operator.code} to confirm."]},
            )
        steps = erasure.erase_operator(actor=request.user, operator=operator)
        operator.refresh_from_db()
        return _answer(operator, steps, erased=True)
