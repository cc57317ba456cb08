"""The worker timeline: each test file as a bar on the worker slot that ran it (frame of
``analysis.worker_timeline``)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from devformance_nb.charts.figures import OUTCOME_COLORS, RUN_WIDTH, Chart, chart_title, ours

#: a file's status colour: the outcome colours, and the statuses only a file has
STATUS_COLORS = {
    **OUTCOME_COLORS,
    "stopped": "#f08c00",
    "empty": "#adb5bd",
    "running": "#1c7ed6",
}
#: the height of one worker slot's row, in pixels
ROW_PX = 22


def busy_share(df: pd.DataFrame) -> float | None:
    """The share of the slots' time spent running files, from the first start to the last end
    of the frame's files (None: nothing ran)."""
    if df.empty:
        return None
    span = float(df["end_s"].max()) - min(0.0, float(df["start_s"].min()))
    slots = int(df["worker"].max()) + 1
    if span <= 0:
        return None
    return float((df["end_s"] - df["start_s"]).clip(lower=0).sum()) / (span * slots)


@ours
def worker_timeline(df: pd.DataFrame) -> Chart:
    """Each test file as a bar on the worker slot that ran it, from its start to its end,
    coloured by its status (frame of ``analysis.worker_timeline``).

    Empty space on a row is a worker waiting; the bars that end last are the run's long tail.
    Hover a bar for its file and duration; click the legend to pick a status.
    """
    share = busy_share(df)
    if share is None:
        subtitle = "no file of this run has a worker slot recorded"
    else:
        slots = int(df["worker"].max()) + 1
        span = float(df["end_s"].max())
        subtitle = f"{slots} worker slots busy {share:.0%} of {span:.1f} s; hover a bar for a file"
    present = set(df["status"]) if "status" in df else set()
    domain = [k for k in STATUS_COLORS if k in present] + sorted(present - set(STATUS_COLORS))
    pick = alt.selection_point(fields=["status"], bind="legend")
    chart: Chart = (
        alt.Chart(df, title=chart_title("Worker timeline", subtitle))
        # a thin edge keeps two files that follow each other on a slot apart
        .mark_bar(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("start_s:Q", title="seconds from the run's start", scale=alt.Scale(zero=True)),
            x2="end_s:Q",
            y=alt.Y("worker:O", title="worker slot", sort="ascending"),
            color=alt.Color(
                "status:N",
                title="status",
                scale=alt.Scale(
                    domain=domain or list(STATUS_COLORS),
                    range=[STATUS_COLORS.get(k, "#495057") for k in domain or STATUS_COLORS],
                ),
            ),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.25)),
            tooltip=[
                "file:N",
                alt.Tooltip("duration_s:Q", format=".2f", title="duration (s)"),
                "status:N",
                "worker:O",
                alt.Tooltip("start_s:Q", format=".2f", title="start (s)"),
                alt.Tooltip("end_s:Q", format=".2f", title="end (s)"),
                "tests:Q",
                "failed:Q",
            ],
        )
        .add_params(pick)
        .properties(width=RUN_WIDTH, height=alt.Step(ROW_PX))
    )
    return chart
