"""The console's SVG charts and its words for alert kinds, actions and refusals."""

from __future__ import annotations

import datetime as dt
import re
import typing

import pytest

from maskline.admin.charts import Line, line_chart, meter, nice_ceiling, traffic_chart
from maskline.admin.labels import ACTIONS, LABELS, REFUSAL_REASONS
from maskline.audit.interfaces import ALERT_KINDS
from maskline.numbers.interfaces import RejectReason
from maskline.numbers.load import RegionLoad


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (240, 500)])
def test_the_y_axis_ends_at_a_round_number(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_a_line_chart_has_a_point_per_value_and_escapes_its_words() -> None:
    svg = str(
        line_chart([Line("<b>calls</b>", [0, 2, 4], "calls")], [(0, "<x>")], title="a & b", chart_id="c")
    )
    points = re.search(r'<polyline class="series calls" points="([^"]+)"', svg)
    assert points and len(points.group(1).split()) == 3
    assert (
        "<b>" not in svg
        and "&lt;b&gt;calls" in svg
        and "&lt;x&gt;" in svg
        and 'aria-label="a &amp; b"' in svg
    )
    # The highest value touches the top of the plot (the axis ends at 4... rounded to 5).
    assert ">5<" in svg


def test_no_style_attribute_is_used_the_csp_would_drop_it() -> None:
    svg = str(line_chart([Line("calls", [1, 2], "calls")], [], title="t", chart_id="c"))
    svg += str(meter(0.9, warn=True, label="CN:21", mark=0.8))
    assert "style=" not in svg and "<script" not in svg


@pytest.mark.parametrize(("share", "width"), [(-1.0, "0"), (0.5, "50"), (2.0, "100")])
def test_a_meter_is_clipped_to_its_track(share: float, width: str) -> None:
    assert f'class="fill" width="{width}"' in str(meter(share, warn=False, label="x"))


def test_daily_ticks_fall_on_local_midnights() -> None:
    starts = [dt.datetime(2026, 12, 1, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(48)]
    shanghai = dt.timezone(dt.timedelta(hours=8))
    svg = str(
        traffic_chart(
            starts, [Line("x", [0] * 48, "binds")], title="t", chart_id="c", zone=shanghai, daily=True
        )
    )
    assert re.findall(r">(\d\d-\d\d)<", svg) == ["12-02", "12-03"]


def test_a_region_is_low_past_80_percent_and_full_without_active_numbers() -> None:
    def region(live: int, active: int) -> RegionLoad:
        return RegionLoad(
            country="CN",
            area="21",
            active_numbers=active,
            capacity=active * 10,
            live_bindings=live,
            sample="+862100000000",
        )

    assert not region(8, 1).low and region(9, 1).low
    assert region(1, 0).low and not region(0, 0).low


def test_every_alert_kind_and_refusal_reason_has_words() -> None:
    assert [k for k in ALERT_KINDS if k not in LABELS] == []
    assert [r for r in typing.get_args(RejectReason) if r not in REFUSAL_REASONS] == []


def test_every_audit_action_written_in_the_code_has_words() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "maskline"
    written = set()
    for path in root.rglob("*.py"):
        written |= set(
            re.findall(
                r'action="((?:admin|reveal|vault|pool|apikey|binding|keys|owner)\.[a-z_.]+)"',
                path.read_text(),
            )
        )
    assert written, "the scan found no action"
    assert sorted(written - set(ACTIONS)) == []
