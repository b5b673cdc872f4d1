"""`seed_demo_evaluation` (what `make run` seeds): a public board with numbers, a running
blinded campaign with one trial held for the console; run twice, it adds nothing."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from evaluation.models import Benchmark, Campaign, Trial, TrialReport

pytestmark = pytest.mark.django_db


def test_seed_demo_evaluation_builds_a_board_and_a_running_campaign_once():
    call_command("seed_demo_evaluation", stdout=StringIO())
    benchmark = Benchmark.objects.get(name="Tabletop basics")
    done = Campaign.objects.get(benchmark=benchmark)
    assert done.status == "done" and done.blinded
    assert not done.trials.exclude(state__in=["done", "invalid"]).exists()
    # Scored by the demo operator, as the console would.
    assert set(TrialReport.objects.values_list("operator__code", flat=True)) == {"OP-DEMO1"}
    running = Campaign.objects.get(name="Drawer check")
    assert running.status == "running"
    assert running.trials.filter(state=Trial.State.ASSIGNED).count() == 1

    page = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    for name in ("diffusion-policy", "pi0-finetune", "act-baseline"):
        assert name in page
    assert "OP-DEMO1" not in page

    counts = (Trial.objects.count(), TrialReport.objects.count())
    out = StringIO()
    call_command("seed_demo_evaluation", stdout=out)
    assert "already there" in out.getvalue()
    assert (Trial.objects.count(), TrialReport.objects.count()) == counts
