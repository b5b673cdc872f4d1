"""How the leaderboard pages write the numbers of the leaderboard JSON for a reader.

Rates, intervals and differences are fractions in [0, 1] (or [-1, 1]) shown with two
decimals everywhere: the table, the heat maps, the chart's tooltips and the compare page.
p-values get three decimals, and "< 0.001" below that.
"""

import math

from django import template
from django.template.defaultfilters import floatformat
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

register = template.Library()

MISSING = "–"

# `stats.TwoPolicyComparison.test`: the exact test the comparison ran.
EXACT_TESTS = {
    "boschloo": "Boschloo's exact test",
    "fisher": "Fisher's exact test",
}


@register.filter
def number(value, digits=2):
    """`value` rounded to `digits` decimals (2 unless given) the way Django's `floatformat`
    rounds (half up), negatives with a minus sign (U+2212), "–" when there is none."""
    if value is None or value == "":
        return MISSING
    return floatformat(value, digits).replace("-", "\u2212")


@register.filter
def lower_bound(value, digits=2):
    """An interval's lower end rounded down (outward) to `digits` decimals, so the interval
    written is never narrower than the one computed: -0.0047 is "−0.01", never "0.00", which
    would hide that the interval includes 0."""
    return _outward(value, digits, math.floor)


@register.filter
def upper_bound(value, digits=2):
    """An interval's upper end rounded up (outward); see `lower_bound`."""
    return _outward(value, digits, math.ceil)


def _outward(value, digits, direction) -> str:
    if value is None or value == "":
        return MISSING
    scale = 10 ** int(digits)
    # A hair of tolerance: 0.25 computed as 0.25000000000000006 stays 0.25.
    rounded = direction(round(float(value) * scale, 9)) / scale
    return f"{rounded:.{int(digits)}f}".replace("-", "\u2212")


@register.filter
def p_value(value, name=""):
    """A p-value in [0, 1] with three decimals, "< 0.001" below that; with a `name`,
    written as "p = 0.078" or "p < 0.001"."""
    if value is None:
        return MISSING
    written = "< 0.001" if value < 0.001 else floatformat(value, 3)
    if not name:
        return written
    return f"{name} {written}" if written.startswith("<") else f"{name} = {written}"


@register.filter
def ratio(successes, trials):
    """k / n as a fraction, None without trials."""
    return successes / trials if trials else None


@register.filter
def exact_test_name(test):
    return EXACT_TESTS.get(test, test)


@register.filter
def as_datetime(value):
    """The leaderboard JSON's ISO 8601 `computed_at` as an aware datetime (None if absent),
    for the `date` filter, which shows it in the current time zone."""
    if not value:
        return None
    return parse_datetime(value) if isinstance(value, str) else value


@register.simple_tag
def sequential_verdict(sequential, a, b):
    """The state of `stats.sequential_paired_test` in words, naming the policies."""
    state = sequential["state"]
    if state == "a_better":
        return f"Stopped: A ({a}) is better"
    if state == "b_better":
        return f"Stopped: B ({b}) is better"
    if state == "inconclusive":
        return "Stopped: no difference shown within the planned pairs"
    return "Running: no decision yet, keep running pairs"


@register.simple_tag
def heat_cell(cell):
    """One heat-map cell: shaded by its rate, the rate, its 95% interval and k/n in view,
    and the same read out in words to a screen reader (the bracket and slash are hidden)."""
    if not cell or cell.get("rate") is None:
        return format_html(
            '<td class="cell"><span aria-hidden="true">{}</span>'
            '<span class="visually-hidden">no counted trial</span></td>',
            MISSING,
        )
    rate, low, high = number(cell["rate"]), number(cell["low"]), number(cell["high"])
    k, n = cell["successes"], cell["trials"]
    return format_html(
        # The shade's alpha is the rate: written with a dot whatever the locale.
        '<td class="cell" style="--rate: {}"><span class="rate">{}</span>'
        '<span class="small" aria-hidden="true">[{}, {}]</span>'
        '<span class="visually-hidden">, 95% interval {} to {},</span>'
        '<span class="small" aria-hidden="true">{}/{}</span>'
        '<span class="visually-hidden">{} of {} trials succeeded</span></td>',
        f"{cell['rate']:.2f}",
        rate,
        low,
        high,
        low,
        high,
        k,
        n,
        k,
        n,
    )


@register.filter
def chart_numbers(rows):
    """What the chart's tooltips print for each leaderboard row, in the table's order and
    written exactly as the table writes them (the chart's own numbers are rounded percents,
    for drawing)."""
    return [
        {
            "macro": number(r["macro"]),
            "low": number(r["macro_low"]),
            "high": number(r["macro_high"]),
        }
        for r in rows
    ]
