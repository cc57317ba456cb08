"""A file's samples over its whole life, kept in a bounded number of points."""

from __future__ import annotations

import pytest

from devformance_nb.run.samples import HISTORY_POINTS, Point, SampleHistory

pytestmark = pytest.mark.quick


def test_until_it_is_full_every_sample_is_a_point() -> None:
    history = SampleHistory(size=4)
    assert history.points() == [] and len(history) == 0 and history.first_t is None
    for n in range(3):
        history.add(10.0 + n, cpu_percent=10.0 * n, rss=100 + n)
    assert history.points() == [Point(10.0, 0.0, 100), Point(11.0, 10.0, 101),
                                Point(12.0, 20.0, 102)]  # fmt: skip
    assert history.span == 1 and history.first_t == 10.0 and history.samples == 3


def test_full_points_merge_in_pairs_keeping_the_mean_cpu_and_the_peak_memory() -> None:
    history = SampleHistory(size=4)
    for t, cpu, rss in ((1, 10, 500), (2, 30, 100), (3, 50, 200), (4, 70, 900)):
        history.add(float(t), float(cpu), rss)
    # full at four: two points of two samples each
    assert history.points() == [Point(2.0, 20.0, 500), Point(4.0, 60.0, 900)]
    assert history.span == 2
    history.add(5.0, 90.0, 300)  # the newest point is drawn while it fills
    assert history.points()[-1] == Point(5.0, 90.0, 300) and len(history) == 3
    history.add(6.0, 10.0, 100)
    assert history.points()[-1] == Point(6.0, 50.0, 300) and len(history) == 3


def test_a_long_life_stays_bounded_and_keeps_its_start_and_its_peak() -> None:
    history = SampleHistory()
    for n in range(1_800):  # ten minutes at three samples a second
        history.add(float(n), cpu_percent=100.0, rss=5_000 if n == 777 else 1_000)
    points = history.points()
    assert HISTORY_POINTS // 2 <= len(points) <= HISTORY_POINTS
    assert history.first_t == 0.0 and points[-1].t == 1_799.0 and history.samples == 1_800
    assert max(p.rss for p in points) == 5_000, "a one-sample peak survives every merge"
    assert all(p.cpu_percent == 100.0 for p in points)
    assert [p.t for p in points] == sorted(p.t for p in points)


@pytest.mark.parametrize("size", [0, 1, 3])
def test_a_history_holds_an_even_number_of_points(size: int) -> None:
    with pytest.raises(ValueError, match="even number"):
        SampleHistory(size=size)
