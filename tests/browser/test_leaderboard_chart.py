"""The public leaderboard draws its interval chart with the vendored Chart.js (no console
error, no Content-Security-Policy violation, no request leaving the machine) on the table's
scale; its heat maps show each cell's interval, and both downloads download."""

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.watch import watch
from tests.core import factories
from tests.evaluation.test_leaderboard_chart import OUTCOMES, played_board

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"

CHART = """() => {
  const canvas = document.querySelector("[data-leaderboard-chart] canvas");
  const chart = canvas && window.Chart && window.Chart.getChart(canvas);
  if (!chart) return null;
  return {
    labels: chart.data.labels,
    intervals: chart.data.datasets[0].data,
    points: chart.data.datasets[1].data,
    x: [chart.scales.x.min, chart.scales.x.max],
    ticks: chart.scales.x.ticks.map((t) => t.label),
    width: canvas.width,
    height: canvas.height,
    hidden: canvas.closest("figure").hidden,
  };
}"""


# The tooltip's lines for policy `i`: what a pointer resting on its row shows.
TOOLTIP = """(i) => {
  const chart = window.Chart.getChart(document.querySelector("[data-leaderboard-chart] canvas"));
  const meta = chart.getDatasetMeta(1).data[i];
  chart.tooltip.setActiveElements(
    [{ datasetIndex: 1, index: i }, { datasetIndex: 0, index: i }], { x: meta.x, y: meta.y }
  );
  chart.update();
  const lines = chart.tooltip.body.map((b) => b.lines.join(" "));
  return [lines.find((l) => l.startsWith("Macro")), lines.find((l) => l.startsWith("95%"))];
}"""


def test_public_leaderboard_draws_the_interval_chart(live_server, browser):
    world = factories.build_world()
    benchmark = played_board(world.a)
    host = urlsplit(live_server.url).netloc
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    # Reported to the page as events, besides the console message Chromium prints.
    page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    seen = watch(page, host)
    errors, outside = seen.errors, seen.outside
    response = page.goto(f"{live_server.url}/leaderboards/{benchmark.pk}/")
    assert response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_function(f"({CHART})() !== null", timeout=30_000)
    chart = page.evaluate(CHART)
    assert chart["labels"] == [f"{i}. {name} v1" for i, name in enumerate(OUTCOMES, start=1)]
    # The table's scale: fractions from 0 to 1, not percents.
    assert chart["points"] == [0.75, 0.5, 0.25]
    for (low, high), point in zip(chart["intervals"], chart["points"], strict=True):
        assert 0 <= low < point < high <= 1
    assert chart["x"] == [0, 1]
    assert chart["ticks"] == [f"{i / 10:.1f}" for i in range(11)]
    assert chart["width"] > 0 and chart["height"] > 0 and not chart["hidden"]
    # The table is still there, with one row per policy, and each tooltip writes the numbers
    # as the table does.
    rows = page.locator("table[aria-label=Leaderboard] tbody tr")
    assert rows.count() == len(OUTCOMES)
    for i in range(len(OUTCOMES)):
        macro, interval = page.evaluate(TOOLTIP, i)
        written = rows.nth(i).locator("td").nth(2).inner_text()  # "0.75 [0.47, 0.91]"
        low, high = written.split(" [")[1].rstrip("]").split(", ")
        assert macro == f"Macro success: {written.split(' ')[0]} (n = 8)"
        assert interval == f"95% interval: {low} to {high}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "leaderboard.png"))
    assert page.evaluate("window.__cspViolations") == []
    assert errors == []
    assert outside == []


def test_heat_map_intervals_are_in_view_and_both_downloads_download(live_server, browser):
    world = factories.build_world()
    benchmark = played_board(world.a)
    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    seen = watch(page, urlsplit(live_server.url).netloc)
    page.goto(f"{live_server.url}/leaderboards/{benchmark.pk}/")
    for name in ("Success by task", "Success by condition"):
        cells = page.get_by_role("table", name=name).locator("td.cell")
        assert cells.count() > 0
        for i in range(cells.count()):
            cell = cells.nth(i)
            # The interval is on screen, not in a tooltip; the cell is shaded by its rate.
            interval = cell.locator("span.small").first
            assert interval.is_visible()
            assert re.fullmatch(r"\[\d\.\d\d, \d\.\d\d\]", interval.inner_text())
            assert cell.get_attribute("title") is None
            shade = cell.evaluate("(td) => getComputedStyle(td).backgroundColor")
            rate = float(cell.locator("span.rate").inner_text())
            full = "rgb(90, 190, 130)"  # how a browser writes an alpha of 1
            assert shade == (full if rate == 1 else f"rgba(90, 190, 130, {rate:g})")

    for name, suffix in (("Download JSON", "json"), ("Download CSV", "csv")):
        with page.expect_download(timeout=10_000) as download:
            page.get_by_role("link", name=name).click()
        assert download.value.suggested_filename == f"leaderboard-{benchmark.pk}.{suffix}"
    # Still on the leaderboard: the JSON was saved, not opened in the tab.
    assert page.url == f"{live_server.url}/leaderboards/{benchmark.pk}/"
    assert seen.errors == [] and seen.outside == []
