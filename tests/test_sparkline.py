"""A file's memory and CPU as inline SVG sparklines, from known samples."""

from __future__ import annotations

import re

import pytest

from devformance_nb.run.state import FileState
from devformance_nb.ui import sparkline
from devformance_nb.ui.sparkline import polyline_points, resources_html, sparkline_svg

pytestmark = pytest.mark.quick

MB = 1_000_000


def test_values_are_spread_across_and_scaled_to_the_top() -> None:
    # a 100 x 12 box: one pixel of room at the top and the bottom, so 0 is at y 11, top at 1
    assert polyline_points([0, 50, 100], top=100, width=100, height=12) == [
        (0.0, 11.0), (50.0, 6.0), (100.0, 1.0),
    ]  # fmt: skip
    assert polyline_points([0, 200, -5], top=100, width=10, height=12) == [
        (0.0, 11.0), (5.0, 1.0), (10.0, 11.0),
    ], "above the top is drawn at the top, below zero at the bottom"  # fmt: skip
    assert polyline_points([0, 0], top=0, width=10, height=12) == [(0.0, 11.0), (10.0, 11.0)]


def test_one_value_is_a_level_line_and_none_draws_nothing() -> None:
    assert polyline_points([25], top=100, width=40, height=12) == [(0.0, 8.5), (40.0, 8.5)]
    assert polyline_points([], top=100) == []
    assert sparkline_svg([], 100, colour="red", label="x") == ""


def test_the_svg_holds_the_points_and_its_escaped_label() -> None:
    svg = sparkline_svg([0, 100], 100, colour="red", label="CPU <peak>", width=20, height=12)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'points="0,11 20,1"' in svg and "stroke:red" in svg
    assert "<title>CPU &lt;peak&gt;</title>" in svg and 'width="20" height="12"' in svg


def sampled(*samples: tuple[float, float, int], status: str = "running") -> FileState:
    fs = FileState(key="t.py", status=status)
    for t, cpu, rss in samples:
        fs.samples.add(t, cpu, rss)
    return fs


def test_a_running_file_shows_both_lines_and_its_figures_now() -> None:
    fs = sampled((100.0, 50.0, 100 * MB), (100.5, 150.0, 300 * MB), (101.0, 20.0, 200 * MB))
    html = resources_html(fs)
    assert html.count("<svg") == 2 and "devformance-spark" in html
    memory, cpu = re.findall(r'points="([^"]+)"', html)
    # memory from zero to the peak (300 MB at the top), CPU from zero to its 150% peak
    width, height = sparkline.WIDTH, sparkline.HEIGHT
    assert memory.split()[1] == f"{width / 2:g},1"
    assert cpu.split()[1] == f"{width / 2:g},1" and cpu.split()[2].endswith(
        f",{round(height - 1 - 20 / 150 * (height - 2), 1):g}"
    )
    assert "200 MB" in html and "20%" in html, "the last sample's figures"
    assert "memory over 1 s: peak 300 MB, last 200 MB" in html
    assert "peak 150%, mean 73%" in html


def test_a_finished_file_shows_its_peak_and_mean_and_a_file_never_sampled_nothing() -> None:
    fs = sampled((1.0, 90.0, 80 * MB), (2.0, 10.0, 40 * MB), status="passed")
    html = resources_html(fs)
    assert "peak 80 MB" in html and "mean 50%" in html
    assert resources_html(FileState(key="t.py", status="running")) == ""
    one = resources_html(sampled((1.0, 5.0, 30 * MB)))
    assert one.count("<svg") == 2 and "30 MB" in one, "one sample: a level line"
