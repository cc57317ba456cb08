"""Our charts draw offline and only ours: the renderer's output, and no side effect on import."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import altair as alt
import pandas as pd
import pytest

from devformance_nb import charts
from devformance_nb.charts import renderer

FRAME = pd.DataFrame(
    {
        "run_id": ["r1", "r2"],
        "duration_s": [1.5, 2.0],
        "status": ["passed", "failed"],
        "started_at": pd.to_datetime(["2026-01-01", "2026-01-02"]),
        "git_branch": ["main", "main"],
        "git_commit": ["a", "b"],
        "files": [1, 1],
        "tests": [3, 3],
        "failed": [0, 1],
        "queries": [10, 12],
        "n_plus_one": [0, 1],
        "coverage_percent": [80.0, 81.0],
    }
)


def test_importing_the_charts_changes_no_altair_setting() -> None:
    code = (
        "import altair as alt\n"
        "before = (alt.renderers.active, alt.theme.active)\n"
        "import devformance_nb.charts\n"
        "import devformance_nb.cli.report\n"
        "print(before == (alt.renderers.active, alt.theme.active), alt.renderers.active)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["True", "default"]


def test_making_a_chart_puts_our_renderer_in_front_of_the_active_one() -> None:
    code = (
        "import altair as alt, pandas as pd\n"
        "from devformance_nb import charts\n"
        "alt.renderers.enable('mimetype')\n"
        "c = charts.runs_overview(pd.DataFrame({'run_id': ['r'], 'duration_s': [1.0],"
        " 'status': ['passed']}))\n"
        "other = alt.Chart(pd.DataFrame({'a': [1]})).mark_point().encode(x='a')\n"
        "print(alt.renderers.active)\n"
        "print(sorted(other._repr_mimebundle_()[0]))\n"
        "print(sorted(c._repr_mimebundle_()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == renderer.RENDERER
    # the user's chart: what the renderer they chose gives (Vega-Lite's mime type)
    assert any("vegalite" in mime for mime in json.loads(out[1].replace("'", '"')))
    # ours: HTML that draws with no network
    assert json.loads(out[2].replace("'", '"')) == ["text/html", "text/plain"]


def test_our_chart_is_a_static_picture_and_a_script_with_no_url() -> None:
    renderer.resend_bundle()
    chart = charts.runs_overview(FRAME[["run_id", "duration_s", "status"]])
    first = renderer.render(chart.to_dict())["text/html"]
    second = renderer.render(chart.to_dict())["text/html"]
    # the picture: an SVG drawn in the kernel, inlined
    assert re.search(r'<img class="devformance-static" alt="devformance_nb runs_overview', first)
    assert "data:image/svg+xml" in first and "%3Csvg" in first.replace("<svg", "%3Csvg")
    # the bundle travels once per kernel; every chart has its own embed script
    assert renderer.vega_bundle() in first and renderer.vega_bundle() not in second
    assert "vegaEmbed(live, spec" in second
    # nothing loads from outside the page
    script_text = second.split("<script>", 1)[1]
    assert not re.search(r"https?://(?!vega\.github\.io/schema)", script_text)
    assert not re.search(r"<script[^>]+src=", first)


def test_our_look_applies_to_our_charts_whatever_theme_is_active() -> None:
    chart = charts.runs_overview(FRAME[["run_id", "duration_s", "status"]])
    with alt.theme.enable("dark"):
        spec = charts.spec_of(chart)
    assert spec["config"]["font"].startswith("DejaVu Sans")
    assert spec["config"]["range"]["category"] == list(charts.PALETTE)
    plain = charts.spec_of(alt.Chart(pd.DataFrame({"a": [1]})).mark_point())
    assert "font" not in plain.get("config", {})


@pytest.mark.parametrize(
    "compose",
    [
        lambda ours, other: ours | other,
        lambda ours, other: alt.layer(ours, other),
        lambda ours, other: alt.vconcat(other, ours),
        lambda ours, other: ours,
    ],
)
def test_ours_is_found_inside_compositions(compose: Any) -> None:
    ours = charts.runs_overview(FRAME[["run_id", "duration_s", "status"]])
    other = alt.Chart(pd.DataFrame({"run_id": ["r1"], "duration_s": [1.0]})).mark_point()
    assert renderer.is_ours(compose(ours, other).to_dict())
    assert not renderer.is_ours(other.to_dict())


def test_a_spec_with_closing_script_tags_cannot_end_the_script() -> None:
    frame = pd.DataFrame({"run_id": ["</script><b>x"], "duration_s": [1.0], "status": ["passed"]})
    html = renderer.render(charts.runs_overview(frame).to_dict())["text/html"]
    body = html.split("var spec = ", 1)[1]
    assert "</script><b>" not in body.split("</script>")[0]
