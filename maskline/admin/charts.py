"""Server-rendered SVG charts for the console: no script, no library, no CDN.

The console's Content-Security-Policy allows styles from its own stylesheet
only (no ``style`` attributes), so shapes carry classes that admin.css
colours, and sizes as attributes. Every text is escaped here; callers pass
words already translated. Each chart scales with its container (a
``viewBox``, no fixed width), so a phone shows it whole.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

# The drawing's own units: narrow enough that its text stays legible when a
# 390 px phone shows it at three quarters of its size.
WIDTH, HEIGHT = 480, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 10, 22


@dataclass(frozen=True)
class Line:
    """One series: its name (for the legend), values oldest first, and a CSS class."""

    name: str
    values: Sequence[int]
    css: str


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def line_chart(
    lines: Sequence[Line], ticks: Sequence[tuple[int, str]], *, title: str, chart_id: str
) -> Markup:
    """A figure: the lines over a shared y axis from 0, x ticks at the given
    (index, label) points, a legend under it. An empty series draws flat at 0."""
    points = max((len(line.values) for line in lines), default=0)
    top = nice_ceiling(max((max(line.values, default=0) for line in lines), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (points - 1) if points > 1 else plot_w / 2)

    def y(v: float) -> float:
        return TOP + plot_h - plot_h * v / top

    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    # Whole numbers only: a count of 0.5 calls means nothing.
    for value in (0, top // 2, top) if top >= 2 else (0, top):
        at = _number(y(value))
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at}" y2="{at}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 4}" y="{_number(y(value) + 4)}" '
            f'text-anchor="end">{_number(value)}</text>'
        )
    for index, label in ticks:
        parts.append(
            f'<text class="tick" x="{_number(x(index))}" y="{HEIGHT - 6}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    for line in lines:
        coords = " ".join(f"{_number(x(i))},{_number(y(v))}" for i, v in enumerate(line.values))
        parts.append(
            f'<polyline class="series {escape(line.css)}" points="{coords}">'
            f"<title>{escape(line.name)}</title></polyline>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><svg class="swatch" viewBox="0 0 12 12" aria-hidden="true">'
        f'<rect class="{escape(line.css)}" width="12" height="12"/></svg>{escape(line.name)}</span>'
        for line in lines
    )
    # Safe: every text above went through escape(); the rest are numbers.
    return Markup(f'<figure class="chart">{"".join(parts)}<figcaption>{legend}</figcaption></figure>')  # noqa: S704


def meter(share: float, *, warn: bool, label: str, mark: float | None = None) -> Markup:
    """A horizontal bar filled to ``share`` (0..1, clipped), red past its
    warning, with a tick at ``mark`` (the warning's share)."""
    filled = max(0.0, min(share, 1.0)) * 100
    css = "fill warn" if warn else "fill"
    # Safe: the label is escaped, the rest are numbers and constants.
    return Markup(  # noqa: S704
        f'<svg class="meter" viewBox="0 0 100 10" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f'<rect class="track" width="100" height="10"/>'
        f'<rect class="{css}" width="{_number(filled)}" height="10"/>'
        + (
            f'<line class="mark" x1="{_number(mark * 100)}" x2="{_number(mark * 100)}" y1="0" y2="10"/>'
            if mark is not None
            else ""
        )
        + "</svg>"
    )


# -- the overview's charts -------------------------------------------------------


def traffic_chart(
    starts: Sequence[dt.datetime],
    series: Sequence[Line],
    *,
    title: str,
    chart_id: str,
    zone: dt.tzinfo,
    daily: bool,
) -> Markup:
    """Per-hour series with x ticks in ``zone``: every 6 hours (``HH:00``), or
    with ``daily`` at each local midnight (``MM-DD``)."""
    ticks: list[tuple[int, str]] = []
    for index, start in enumerate(starts):
        local = start.astimezone(zone)
        if daily and local.hour == 0:
            ticks.append((index, local.strftime("%m-%d")))
        elif not daily and local.hour % 6 == 0:
            ticks.append((index, local.strftime("%H:00")))
    return line_chart(series, ticks, title=title, chart_id=chart_id)
