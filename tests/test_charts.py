"""The charts on real analysis frames: marks, encodings, tooltips, selections and data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import altair as alt
import pandas as pd
import pytest

from devformance_nb import analysis, charts
from devformance_nb.analysis.compare import compare_runs
from devformance_nb.analysis.statements import STATEMENT_CHANGE_COLUMNS

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts


def units(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every single-view spec inside layers and concatenations."""
    for key in ("layer", "vconcat", "hconcat"):
        if key in spec:
            return [u for part in spec[key] for u in units(part)]
    return [spec]


def mark(unit: dict[str, Any]) -> str:
    value = unit["mark"]
    return str(value["type"] if isinstance(value, dict) else value)


def fields(unit: dict[str, Any]) -> dict[str, str]:
    """channel -> field (or aggregate) of a unit's encoding."""
    out = {}
    for channel, enc in unit.get("encoding", {}).items():
        if isinstance(enc, dict) and ("field" in enc or "aggregate" in enc):
            out[channel] = str(enc.get("field", enc.get("aggregate")))
    return out


def rows(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return list(spec.get("datasets", {}).values())


def params(spec: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(spec.get("params", []))
    for key in ("layer", "vconcat", "hconcat"):
        for part in spec.get(key, []):
            found += params(part)
    return found


def check(chart: alt.TopLevelMixin, df: pd.DataFrame) -> dict[str, Any]:
    """The spec, after the checks every chart passes: data, tooltips, a title."""
    spec = chart.to_dict()
    assert len(df) > 0
    assert any(len(data) == len(df) for data in rows(spec)), "the frame is not in the spec"
    for unit in units(spec):
        assert "tooltip" in unit["encoding"], f"no tooltip on a {mark(unit)} mark"
    return spec


def test_runs_overview(db: Path) -> None:
    df = analysis.runs_overview(db, "all")
    spec = check(charts.runs_overview(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "bar"
    assert fields(unit) == {"x": "run_id", "y": "duration_s", "color": "status"}
    assert unit["encoding"]["color"]["scale"]["domain"] == ["passed", "failed"]
    assert params(spec)[0]["bind"] == "legend"


def test_slow_query_ranking(db: Path, facts: Facts) -> None:
    df = analysis.slowest_queries(db, "all", limit=10)
    spec = check(charts.slow_query_ranking(df), df)
    bars, p95, p50 = units(spec)
    assert (mark(bars), mark(p95), mark(p50)) == ("bar", "tick", "tick")
    assert fields(bars) == {"x": "max_ms", "y": "label", "color": "statement_type"}
    assert fields(p95)["x"] == "p95_ms" and fields(p50)["x"] == "p50_ms"
    data = {r["call_site"]: r for r in rows(spec)[0]}
    assert facts.new_slow_caller in data
    assert len(params(spec)) == 2  # click a bar, pick a statement type in the legend


def test_n_plus_one_hotspots(db: Path, facts: Facts) -> None:
    df = analysis.n_plus_one_hotspots(db, "all")
    spec = check(charts.n_plus_one_hotspots(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "bar"
    assert fields(unit) == {
        "x": "queries",
        "y": "site",
        "color": "table_name",
        "fillOpacity": "open",
    }
    tooltip = {t["field"] for t in unit["encoding"]["tooltip"]}
    assert {"caller", "hint", "first_seen_run", "last_seen_run"} <= tooltip
    sites = {r["site"]: r["open"] for r in rows(spec)[0]}
    assert sites[facts.site(facts.fixed_n_plus_one)] is False


def test_coverage_over_runs(db: Path) -> None:
    total = analysis.coverage_over_runs(db, "all")
    per_file = analysis.coverage_per_file(db, "all")
    spec = charts.coverage_over_runs(total, per_file).to_dict()
    line, points, files = units(spec)
    assert (mark(line), mark(points), mark(files)) == ("line", "point", "line")
    assert fields(line) == {"x": "run_id", "y": "percent"}
    assert fields(files) == {"x": "run_id", "y": "percent", "color": "source_file"}
    assert sorted(len(d) for d in rows(spec)) == sorted([len(total), len(per_file)])
    assert all("tooltip" in u["encoding"] for u in (line, points, files))
    assert [p["bind"] for p in params(spec)] == ["legend"]


def test_coverage_contribution(db: Path) -> None:
    df = analysis.coverage_contribution(db, "latest")
    spec = check(charts.coverage_contribution(df), df)
    assert [fields(u)["x"] for u in units(spec)] == ["covered", "unique"]


def test_query_count_heatmap(db: Path) -> None:
    df = analysis.query_counts_per_file(db, "all")
    spec = check(charts.query_count_heatmap(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "rect"
    assert fields(unit) == {"x": "run_id", "y": "file", "color": "queries"}
    timed = charts.query_count_heatmap(df, value="query_ms").to_dict()
    assert fields(units(timed)[0])["color"] == "query_ms"
    assert params(spec)[0]["select"]["type"] == "point"


def test_duration_distribution(db: Path) -> None:
    df = analysis.durations_per_test(db, "all")
    spec = check(charts.duration_distribution(df), df)
    histogram, strip = units(spec)
    assert (mark(histogram), mark(strip)) == ("bar", "tick")
    assert histogram["encoding"]["x"]["bin"] and fields(histogram)["y"] == "count"
    assert fields(strip) == {"x": "ms", "y": "file", "color": "outcome"}
    (brush,) = params(spec)
    assert brush["select"]["type"] == "interval"
    assert {"filter": {"param": brush["name"]}} in strip["transform"]


def test_slowest_tests(db: Path) -> None:
    df = analysis.slowest_tests(db, "all", limit=10)
    spec = check(charts.slowest_tests(df), df)
    assert [mark(u) for u in units(spec)] == ["bar", "rule"]


def test_run_comparison(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("baseline"), facts.run("fix"))
    spec = charts.run_comparison(cmp.query_changes, cmp.coverage_changes).to_dict()
    queries, coverage = units(spec)
    assert fields(queries) == {"x": "queries_delta", "y": "nodeid"}
    assert fields(coverage) == {"x": "delta", "y": "source_file"}
    assert sorted(len(d) for d in rows(spec)) == sorted(
        [len(cmp.query_changes), len(cmp.coverage_changes)]
    )
    assert all("tooltip" in u["encoding"] for u in (queries, coverage))


@pytest.mark.parametrize(("base", "step"), [("baseline", "fix"), ("main", "flaky")])
def test_statement_changes(db: Path, facts: Facts, base: str, step: str) -> None:
    # against the run before, and against main's runs (the median: the regress step's loop
    # ran in one of three, so the flaky run on feature differs from main by that loop)
    a = f"branch:{facts.main_branch}:last:5" if base == "main" else facts.run(base)
    cmp = compare_runs(db, a, facts.run(step))
    df = cmp.statement_changes
    assert df is not None
    spec = check(charts.statement_changes(df), df)
    (unit,) = units(spec)
    assert mark(unit) == "bar"
    assert fields(unit) == {"x": "delta", "y": "nodeid", "color": "change", "order": "size"}
    assert unit["encoding"]["color"]["scale"]["domain"] == list(charts.CHANGE_COLORS)
    tooltip = {t["field"] for t in unit["encoding"]["tooltip"]}
    assert {"nodeid", "change", "statement", "caller", "count_a", "count_b", "delta"} <= tooltip
    assert params(spec)[0]["bind"] == "legend"
    # a bar per test whose statements changed: exactly the tests the step's edit touches
    (data,) = rows(spec)
    expected = facts.changed_tests["fix" if step == "fix" else "regress"]
    assert sorted({r["nodeid"] for r in data}) == sorted(expected)
    assert all(r["statement"] and "\n" not in r["statement"] for r in data)
    assert spec["title"]["subtitle"] == "b minus a, a segment per statement"


def test_statement_changes_of_one_commit_say_nothing_changed(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("regress"), facts.run("flaky"))
    spec = charts.statement_changes(cmp.statement_changes).to_dict()
    assert rows(spec) == [[]]
    assert spec["title"]["subtitle"] == "no test's statements changed"


def test_statement_changes_show_the_removed_lookups_compactly(db: Path, facts: Facts) -> None:
    cmp = compare_runs(db, facts.run("baseline"), facts.run("fix"))
    (data,) = rows(charts.statement_changes(cmp.statement_changes).to_dict())
    planted = facts.fixed_n_plus_one
    (lookups,) = [r for r in data if r["nodeid"] == planted["nodeid"] and r["delta"] < -1]
    assert lookups["statement"] == f"SELECT … FROM {planted['table']} WHERE authors.id = ?"
    assert (lookups["change"], lookups["count_a"], lookups["count_b"]) == (
        "removed",
        planted["count"],
        0,
    )
    assert lookups["caller"] == f"{planted['touched_at']} {planted['function']}"


@pytest.mark.parametrize(
    ("chart", "columns"),
    [
        (charts.n_plus_one_hotspots, ["site", "queries", "table_name", "open"]),
        (charts.slow_query_ranking, ["fingerprint_hash", "fingerprint", "max_ms"]),
        (charts.statement_changes, STATEMENT_CHANGE_COLUMNS),
    ],
)
def test_charts_take_any_frame_even_an_empty_one(chart: Any, columns: list[str]) -> None:
    spec = chart(pd.DataFrame(columns=columns)).to_dict()
    assert units(spec)
