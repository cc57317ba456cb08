"""A file's memory and CPU over its life as two tiny inline SVG sparklines (pure functions).

Drawn from the run state's sample history (``FileState.samples``: at most a few dozen
points, however long the file runs), so the HTML stays around a kilobyte and a pane's redraw
sends it with the rest of its header, within the view's message budget. Memory is scaled
from zero to the file's peak (growth reads as growth), CPU from zero to one core (or higher,
when the tree used more), so the lines of two files compare at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence

from devformance_nb.run.state import FileState
from devformance_nb.ui import text

WIDTH = 80
HEIGHT = 16
#: room for the line's width at the top and bottom of the box
PAD = 1.0
#: the lines' colours: JupyterLab's theme colours with fallbacks for a white page
MEMORY_COLOUR = "var(--jp-brand-color1, #1976d2)"
CPU_COLOUR = "var(--jp-warn-color1, #bc4c00)"


def polyline_points(
    values: Sequence[float], top: float, width: float = WIDTH, height: float = HEIGHT
) -> list[tuple[float, float]]:
    """Where each value goes in a ``width`` x ``height`` box: evenly spaced left to right,
    zero at the bottom and ``top`` at the top (higher values are drawn at the top); a single
    value is a level line across the box; no values, no points."""
    if not values:
        return []
    top = top if top > 0 else 1.0
    usable = height - 2 * PAD
    ys = [round(height - PAD - min(max(v, 0.0), top) / top * usable, 1) for v in values]
    if len(ys) == 1:
        return [(0.0, ys[0]), (float(width), ys[0])]
    step = width / (len(ys) - 1)
    return [(round(i * step, 1), y) for i, y in enumerate(ys)]


def sparkline_svg(
    values: Sequence[float],
    top: float,
    *,
    colour: str,
    label: str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """An inline SVG line of ``values`` (scaled to ``top``), titled ``label`` for a tooltip
    and screen readers; '' without values."""
    points = polyline_points(values, top, width, height)
    if not points:
        return ""
    coords = " ".join(f"{x:g},{y:g}" for x, y in points)
    name = text.esc(label)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{name}" '
        f'style="vertical-align:middle;border-bottom:1px solid {text.BORDER}">'
        f"<title>{name}</title>"
        f'<polyline points="{coords}" style="fill:none;stroke:{colour};stroke-width:1.5;'
        'stroke-linejoin:round"/></svg>'
    )


def resources_html(fs: FileState) -> str:
    """The pane header's sparklines of a file: memory and CPU over its life with the figure
    now (the peak and the mean once it ended); '' before its first sample."""
    points = fs.samples.points()
    if not points:
        return ""
    rss = [p.rss for p in points]
    cpu = [p.cpu_percent for p in points]
    peak_rss, peak_cpu = max(rss), max(cpu)
    mean_cpu = sum(cpu) / len(cpu)
    first = fs.samples.first_t if fs.samples.first_t is not None else points[0].t
    span = f"over {text.seconds(points[-1].t - first, live=True)}"
    memory = sparkline_svg(
        rss, peak_rss, colour=MEMORY_COLOUR,
        label=f"memory {span}: peak {text.megabytes(peak_rss)}, last {text.megabytes(rss[-1])}",
    )  # fmt: skip
    processor = sparkline_svg(
        cpu, max(100.0, peak_cpu), colour=CPU_COLOUR,
        label=f"CPU {span} (100% = one core): peak {peak_cpu:.0f}%, mean {mean_cpu:.0f}%",
    )  # fmt: skip
    if fs.is_finished:
        memory_now, cpu_now = f"peak {text.megabytes(peak_rss)}", f"mean {mean_cpu:.0f}%"
    else:
        memory_now, cpu_now = text.megabytes(rss[-1]), f"{cpu[-1]:.0f}%"
    return (
        '<span class="devformance-spark" style="display:inline-flex;align-items:center;'
        f'gap:4px;margin-right:10px;font-size:90%;color:{text.MUTED}">'
        f"mem {memory} {text.esc(memory_now)}&nbsp; CPU {processor} {text.esc(cpu_now)}</span>"
    )
