"""Charts of what each test sends to the database (frames of ``analysis.statements``)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from devformance_nb.analysis.statements import compact
from devformance_nb.charts.figures import Chart, chart_title, ours

#: a statement change's colour: red for more statements, green for fewer, darker when the
#: statement appears or goes altogether
CHANGE_COLORS = {
    "added": "#c92a2a",
    "more": "#ff8787",
    "fewer": "#8ce99a",
    "removed": "#2b8a3e",
}


@ours
def statement_changes(df: pd.DataFrame) -> Chart:
    """Per test, each statement whose count changed: a segment of its bar per statement, right
    for more, left for fewer (frame ``statement_changes`` of a ``compare.Comparison``).

    Hover a segment for the statement's shape and the code that sends it; click the legend to
    pick a kind of change.
    """
    # the statement's one-line shape, for the tooltip: the full fingerprint can be pages long
    fingerprints = df["fingerprint"] if "fingerprint" in df else pd.Series("", index=df.index)
    data = df.assign(statement=[compact(f) if isinstance(f, str) else "" for f in fingerprints])
    pick = alt.selection_point(fields=["change"], bind="legend")
    # an empty chart says why it is empty: two runs of one commit often change nothing
    subtitle = "b minus a, a segment per statement" if len(df) else "no test's statements changed"
    chart: Chart = (
        alt.Chart(data, title=chart_title("Changed statements per test", subtitle))
        .transform_calculate(size="abs(datum.delta)")
        .mark_bar(stroke="white", strokeWidth=1)  # a visible edge between two statements
        .encode(
            y=alt.Y(
                "nodeid:N",
                title=None,
                # most statements gained at the top, most shed at the bottom
                sort=alt.EncodingSortField("delta", op="sum", order="descending"),
                axis=alt.Axis(labelLimit=420),
            ),
            x=alt.X("delta:Q", title="statements (b - a)"),
            color=alt.Color(
                "change:N",
                title="change",
                scale=alt.Scale(domain=list(CHANGE_COLORS), range=list(CHANGE_COLORS.values())),
            ),
            # each side's biggest change next to the axis: a test's main change reads first
            order=alt.Order("size:Q", sort="descending"),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.2)),
            tooltip=[
                "nodeid:N",
                "change:N",
                "statement:N",
                "caller:N",
                alt.Tooltip("count_a:Q", format="~g", title="count in a"),
                alt.Tooltip("count_b:Q", format="~g", title="count in b"),
                alt.Tooltip("delta:Q", format="+~g"),
            ],
        )
        .add_params(pick)
        .properties(width=400)
    )
    return chart
