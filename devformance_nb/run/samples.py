"""A file's CPU and memory samples over its whole life, in bounded memory.

The reader samples each child about three times a second, so a file running ten minutes
gives some 1,800 samples; the live view draws them as a sparkline of a few dozen points.
``SampleHistory`` keeps at most ``size`` points: when full, neighbouring points merge in
pairs (CPU: their mean, so the area under the line stays the CPU used; memory: the higher,
so no peak is lost), and each point from then on stands for twice as many samples. The
history is part of the run state, folded from ``resources`` events: a replayed run directory
draws the same line.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the most points a file's history keeps (an even number: points merge in pairs)
HISTORY_POINTS = 60


@dataclass(frozen=True)
class Point:
    """One or more consecutive samples: the last one's wall time, the mean CPU percent (of
    one core) and the highest resident memory (bytes) of the child's process tree."""

    t: float
    cpu_percent: float
    rss: int


def _merge(points: list[Point]) -> Point:
    return Point(
        t=points[-1].t,
        cpu_percent=sum(p.cpu_percent for p in points) / len(points),
        rss=max(p.rss for p in points),
    )


class SampleHistory:
    """At most ``size`` points spanning a file's life, oldest first."""

    def __init__(self, size: int = HISTORY_POINTS) -> None:
        if size < 2 or size % 2:
            raise ValueError(f"a history holds an even number of points, at least 2: {size}")
        self.size = size
        #: samples each full point stands for (doubles at each merge)
        self.span = 1
        self.samples = 0
        self.first_t: float | None = None
        self._full: list[Point] = []
        self._filling: list[Point] = []  # the samples of the newest point, not yet full

    def add(self, t: float, cpu_percent: float, rss: int) -> None:
        """One sample of the child's process tree."""
        self.samples += 1
        if self.first_t is None:
            self.first_t = t
        self._filling.append(Point(t, cpu_percent, rss))
        if len(self._filling) < self.span:
            return
        self._full.append(_merge(self._filling))
        self._filling = []
        if len(self._full) >= self.size:
            self._full = [_merge(self._full[i : i + 2]) for i in range(0, len(self._full), 2)]
            self.span *= 2

    def points(self) -> list[Point]:
        """The points to draw, oldest first; the newest may stand for fewer samples."""
        return self._full + ([_merge(self._filling)] if self._filling else [])

    def __len__(self) -> int:
        return len(self._full) + bool(self._filling)
