"""What a reader sees on the public leaderboard pages: labelled, rounded numbers (two decimals
for rates and intervals, as the leaderboard table), each heat-map cell's interval in view,
readable times, and downloads that download."""

import math
import re
from html import unescape

import pytest
from django.test import Client
from django.utils.dateparse import parse_datetime

from core.models import Visibility
from evaluation.models import LeaderboardSnapshot
from evaluation.services import benchmarks, leaderboards
from proving_ground.stats.comparisons import (
    compare_two_policies,
    mcnemar_exact,
    newcombe_difference_interval,
)
from proving_ground.stats.sequential import sequential_paired_test
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
)
from tests.evaluation.test_leaderboard_chart import played_board

pytestmark = pytest.mark.django_db

# Key names of the comparison's JSON that a page must not print.
RAW_KEYS = (
    "a_successes",
    "b_trials",
    "difference_low",
    "difference_high",
    "p_value",
    "pairs_planned",
    "both_success",
    "a_only",
    "mcnemar_p",
    "e_value",
    "anytime_p_value",
    "max_pairs",
    "a_better",
    "b_better",
    "confidence",
)
LONG_NUMBER = re.compile(r"\d\.\d{4,}")


def _text(html: str) -> str:
    """The page as read: no scripts, no tags, entities decoded, spaces collapsed."""
    html = re.sub(r"<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def _two(value: float) -> str:
    return f"{value:.2f}".replace("-", "\u2212")


def _table(html: str, label: str) -> str:
    return re.search(rf'<table[^>]*aria-label="{label}".*?</table>', html, re.S).group(0)


def _versions(benchmark):
    data = leaderboards.leaderboard_data(LeaderboardSnapshot.Scope.BENCHMARK, benchmark)
    return {row["policy"]: row["policy_version"] for row in data["rows"]}, data


def _paired_board(tw):
    """A public benchmark played in A/B pairs: good-policy always succeeds, weak-policy never."""
    benchmark = make_benchmark(
        tw,
        task_versions=[tw.task.versions.get()],
        conditions=make_conditions(tw),
        trials_per_cell=4,
    )
    good = make_policy_version(tw, name="good-policy", visibility=Visibility.PUBLIC)
    weak = make_policy_version(tw, name="weak-policy", visibility=Visibility.PUBLIC)
    campaign = make_campaign(
        tw,
        policy_versions=[good, weak],
        benchmark=benchmark,
        mode="paired",
        visibility=Visibility.PUBLIC,
    )
    play_campaign(
        campaign,
        tw.robot,
        lambda t: {"outcome": "success" if t.policy_version_id == good.pk else "failure"},
    )
    return benchmark, good, weak


def test_compare_page_writes_labelled_rows_rounded_like_the_table(world):
    benchmark = played_board(world.a)
    versions, _ = _versions(benchmark)
    response = Client().get(
        f"/leaderboards/{benchmark.pk}/compare",
        {"a": versions["mid-policy"], "b": versions["good-policy"]},
    )
    assert response.status_code == 200
    page = _text(response.content.decode())
    # mid-policy 4/8 against good-policy 6/8 (tests.evaluation.test_leaderboard_chart).
    low, high = newcombe_difference_interval(4, 8, 6, 8)
    expected = compare_two_policies(4, 8, 6, 8)
    assert "Successes, A 4 of 8 trials (rate 0.50)" in page
    assert "Successes, B 6 of 8 trials (rate 0.75)" in page
    # Interval ends rounded outward: the interval written is never narrower than computed.
    low_text = f"{math.floor(round(low * 100, 9)) / 100:.2f}".replace("-", "−")
    high_text = f"{math.ceil(round(high * 100, 9)) / 100:.2f}".replace("-", "−")
    assert f"Difference (A − B) −0.25 (95% interval [{low_text}, {high_text}])" in page
    assert "not adjusted for the other pairs on the board" in page
    assert f"Boschloo's exact test p = {expected.p_value:.3f} (two-sided)" in page
    for key in RAW_KEYS:
        assert key not in page
    assert "boschloo" not in page  # the test's name is spelled as a name
    assert LONG_NUMBER.search(page) is None


def test_compare_page_writes_the_paired_and_sequential_tests_in_words(world):
    benchmark, good, weak = _paired_board(world.a)
    response = Client().get(
        f"/leaderboards/{benchmark.pk}/compare", {"a": str(weak.pk), "b": str(good.pk)}
    )
    assert response.status_code == 200
    page = _text(response.content.decode())
    state = sequential_paired_test([0] * 8, [1] * 8, max_pairs=8)
    assert state.state == "b_better"
    assert "Difference (A − B) −1.00" in page
    assert "Pairs 8 complete of 8 planned" in page
    assert "Only A succeeded 0" in page and "Only B succeeded 8" in page
    assert f"McNemar's exact test p = {mcnemar_exact(0, 8):.3f}" in page
    assert f"State Stopped: B ({good}) is better" in page
    assert f"Pairs analysed {state.pairs} of 8 planned" in page
    assert f"E-value {state.e_value:.2f} (the test stops at 1/α = 20)" in page
    assert f"Anytime-valid p-value {state.anytime_p_value:.3f}" in page
    for key in RAW_KEYS:
        assert key not in page
    assert LONG_NUMBER.search(page) is None


@pytest.mark.parametrize("label", ["Success by task", "Success by condition"])
def test_heat_map_cells_are_shaded_and_show_their_interval_in_view(world, label):
    benchmark = played_board(world.a)
    _, data = _versions(benchmark)
    html = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    table = _table(html, label)
    field = "tasks" if label == "Success by task" else "conditions"
    cells = re.findall(r'<td class="cell"(.*?)</td>', table, re.S)
    expected = [cell for row in data["rows"] for cell in row[field]]
    assert len(cells) == len(expected) > 0
    for found, cell in zip(cells, expected, strict=True):
        # Shaded by its rate, the same way in both tables.
        assert f'style="--rate: {cell["rate"]:.2f}"' in found
        text = _text(f"<td{found}</td>")
        interval = f"[{_two(cell['low'])}, {_two(cell['high'])}]"
        # In view (no tooltip to reach), and read out in words by a screen reader.
        assert "title=" not in found
        assert interval in text
        assert f"95% interval {_two(cell['low'])} to {_two(cell['high'])}" in text
        assert f"{cell['successes']}/{cell['trials']}" in text
        assert f"{cell['successes']} of {cell['trials']} trials succeeded" in text
    assert '<th scope="row">' in table  # each row names its policy for a screen reader


def test_leaderboard_writes_when_it_was_computed_as_a_readable_time(world):
    benchmark = played_board(world.a)
    _, data = _versions(benchmark)
    html = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    computed = parse_datetime(data["computed_at"])
    readable = computed.strftime("%Y-%m-%d %H:%M UTC")
    assert f'<time datetime="{computed.isoformat()}">{readable}</time>' in html
    assert data["computed_at"][:16] not in _text(html)

    listing = Client().get("/leaderboards/").content.decode()
    benchmark.refresh_from_db()
    published = benchmark.published_at.strftime("%Y-%m-%d")
    assert f'<time datetime="{benchmark.published_at.isoformat()}">{published}</time>' in listing


def test_both_downloads_download_and_the_api_still_answers_json(world):
    benchmark = played_board(world.a)
    html = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    api = f"/api/v1/benchmarks/{benchmark.pk}/leaderboard"
    assert f'href="{api}" download="leaderboard-{benchmark.pk}.json"' in html
    assert f'href="{api}.csv" download="leaderboard-{benchmark.pk}.csv"' in html
    answer = Client().get(api)
    assert answer["Content-Type"] == "application/json"
    assert "Content-Disposition" not in answer
    assert answer.json()["rows"]


def test_leaderboard_prints_no_unrounded_number_and_no_percent(world):
    benchmark = played_board(world.a)
    html = Client().get(f"/leaderboards/{benchmark.pk}/").content.decode()
    page = _text(html)
    assert re.search(r"\d\.\d{3,}", page) is None
    # The interval bar reads out the same fractions as the table, not percents.
    labels = re.findall(r'class="interval" role="img" aria-label="([^"]+)"', html)
    assert labels and all(re.fullmatch(r"95% interval \d\.\d\d to \d\.\d\d", x) for x in labels)
    # A worst condition's label and its numbers are not run together with a second colon.
    assert not re.search(r": \d\.\d\d \[", page)


def test_a_pg_score_2_board_warns_of_a_policy_with_many_invalid_trials(world):
    tw = world.a
    conditions = make_conditions(tw)
    benchmark = make_benchmark(
        tw, task_versions=[tw.task.versions.get()], conditions=conditions, publish=False
    )
    benchmark.scoring_version = "pg-score/2"
    benchmark.save(update_fields=["scoring_version"])
    benchmark = benchmarks.publish_benchmark(actor=tw.researcher, benchmark=benchmark)
    versions = [make_policy_version(tw, name=n, visibility=Visibility.PUBLIC) for n in "AB"]
    silent = versions[0].pk
    campaign = make_campaign(
        tw, policy_versions=versions, benchmark=benchmark, visibility=Visibility.PUBLIC
    )
    play_campaign(
        campaign,
        tw.robot,
        lambda trial: (
            {"valid": False, "invalid_reason": "no_actions"}
            if trial.policy_version_id == silent
            else {"outcome": "success"}
        ),
    )
    leaderboards.refresh_leaderboard(
        scope=LeaderboardSnapshot.Scope.BENCHMARK, object_id=benchmark.pk
    )
    data = Client().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    assert data["scoring_version"] == "pg-score/2" and data["invalid_warning"]
    flagged = {row["policy"]: row["invalid_flagged"] for row in data["rows"]}
    assert flagged == {"A": True, "B": False}
    page = _text(Client().get(f"/leaderboards/{benchmark.pk}/").content.decode())
    assert "Invalid trials:" in page and "high invalid rate" in page


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        (-0.0047, "−0.01", "0.00"),  # the reviewer's case: "0.00" hid that 0 is inside
        (0.25, "0.25", "0.25"),
        (0.25000000000000006, "0.25", "0.25"),
        (0.8922, "0.89", "0.90"),
        (-0.5, "−0.50", "−0.50"),
        (None, "–", "–"),
    ],
)
def test_interval_ends_are_rounded_outward(value, low, high):
    from evaluation.templatetags.leaderboard_format import lower_bound, upper_bound

    assert (lower_bound(value), upper_bound(value)) == (low, high)


def test_compare_page_leads_with_the_boards_own_comparison_in_either_order(world):
    """A pg-score/2 board ranks, groups and tests by macro success; the compare page shows
    that pair first (oriented A − B), so the page cannot contradict the board, and labels
    the pooled counts as a reference."""
    benchmark = played_board(world.a)
    versions, data = _versions(benchmark)
    assert data["scoring_version"] == "pg-score/2"
    mid, good = versions["mid-policy"], versions["good-policy"]
    pair = next(p for p in data["pairwise"] if {p["first"], p["second"]} == {mid, good})
    sign = 1 if pair["first"] == mid else -1
    for a, b, orientation in ((mid, good, sign), (good, mid, -sign)):
        page = _text(
            Client().get(f"/leaderboards/{benchmark.pk}/compare", {"a": a, "b": b}).content.decode()
        )
        board_part, pooled_part = page.split("Pooled counts (for reference)")
        assert "On the leaderboard (macro success, what it ranks by)" in board_part
        assert f"Difference (A − B) {_two(orientation * pair['difference'])}" in board_part
        assert "Holm-adjusted over the board's pairs" in board_part
        assert "Successes, A" in pooled_part


def test_a_pg_score_1_board_keeps_its_one_comparison(world):
    benchmark = played_board(world.a)
    type(benchmark).objects.filter(pk=benchmark.pk).update(scoring_version="pg-score/1")
    leaderboards.refresh_leaderboard(scope="benchmark", object_id=benchmark.pk)
    versions, _ = _versions(benchmark)
    page = _text(
        Client()
        .get(
            f"/leaderboards/{benchmark.pk}/compare",
            {"a": versions["mid-policy"], "b": versions["good-policy"]},
        )
        .content.decode()
    )
    assert "On the leaderboard (macro success" not in page
    assert "Unpaired" in page
