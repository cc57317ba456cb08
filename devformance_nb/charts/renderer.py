"""How devformance_nb's charts show in a notebook: drawn with no network, and only ours.

Altair's default renderer writes HTML that loads Vega, Vega-Lite and Vega-Embed from a
CDN, so on a machine without internet access a chart shows only "Error loading script".
JupyterLab's own Vega renderer reads Vega-Lite 5 only, and Altair 6 writes Vega-Lite 6.
So each of our charts is displayed as one HTML output that needs nothing from outside:

- a static picture of the chart (SVG drawn in the kernel by vl-convert), which every
  front end shows: JupyterLab, Notebook 7, VS Code, Voila, an HTML export, even with
  JavaScript off or a notebook that is not trusted;
- a script that replaces the picture with the interactive chart (tooltips, legend
  selections) once Vega is in the page. The first chart a kernel displays carries the
  Vega bundle itself (about 0.9 MB, from vl-convert), the later ones use it.

Which charts: the chart functions of :mod:`devformance_nb.charts` write a description
that starts with :data:`MARK`; :func:`enable` puts :func:`render` in front of Altair's
active renderer, and every other chart goes to that renderer unchanged. The chart
functions call :func:`enable` themselves; nothing happens on import.
"""

from __future__ import annotations

import functools
import html
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import altair as alt

#: Altair's name for this renderer (``alt.renderers.active`` once a chart was made)
RENDERER = "devformance"
#: how a description of one of our charts starts
MARK = "devformance_nb"
#: seconds a chart's script waits for the bundle carried by an earlier output
BUNDLE_WAIT_S = 15
#: categorical colours (Tableau 10)
PALETTE = (
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
    "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
)  # fmt: skip
#: the charts' look, applied to our charts only (the ``devformance`` theme has the same)
THEME_CONFIG: dict[str, Any] = {
    "view": {"continuousWidth": 600, "continuousHeight": 300, "stroke": None},
    "font": "DejaVu Sans, Helvetica, Arial, sans-serif",
    "title": {"fontSize": 15, "anchor": "start", "subtitleColor": "#555"},
    "axis": {"labelLimit": 360, "labelFontSize": 11, "titleFontSize": 12},
    "legend": {"labelLimit": 360, "orient": "right"},
    "bar": {"cornerRadiusEnd": 2},
    "range": {"category": list(PALETTE)},
}

_Renderer = Callable[..., Any]


class _State:
    """The renderer Altair had before ours, and whether this kernel sent the bundle."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fallback: _Renderer | None = None
        self.bundle_sent = False


_STATE = _State()


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script, for the Vega-Lite version Altair writes."""
    import vl_convert

    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    bundle: str = vl_convert.javascript_bundle(vl_version=version)  # type: ignore[call-arg]
    return bundle.replace("</script", "<\\/script")


def is_ours(spec: Mapping[str, Any]) -> bool:
    """Whether a Vega-Lite spec holds a chart made by devformance_nb (at any depth)."""
    if str(spec.get("description", "")).startswith(MARK):
        return True
    for key in ("layer", "hconcat", "vconcat", "concat"):
        if any(isinstance(part, Mapping) and is_ours(part) for part in spec.get(key, ())):
            return True
    inner = spec.get("spec")
    return isinstance(inner, Mapping) and is_ours(inner)


def themed(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with the charts' look over whatever theme wrote its config."""
    config = dict(spec.get("config") or {})
    for key, value in THEME_CONFIG.items():
        old = config.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            config[key] = {**old, **value}
        else:
            config[key] = value
    return {**spec, "config": config}


def spec_of(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """A chart's Vega-Lite spec with the charts' look, its data inlined (no row limit)."""
    with alt.data_transformers.disable_max_rows():
        spec: dict[str, Any] = chart.to_dict()
    return themed(spec) if is_ours(spec) else spec


def static_svg(spec: Mapping[str, Any]) -> str:
    """The chart drawn in the kernel as SVG (vl-convert: no browser, no network)."""
    import vl_convert

    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    svg: str = vl_convert.vegalite_to_svg(dict(spec), vl_version=version)  # type: ignore[call-arg]
    return svg


def chart_html(spec: Mapping[str, Any], with_bundle: bool) -> str:
    """One output: the static picture, and the script that makes it interactive."""
    box = f"devformance-chart-{uuid.uuid4().hex}"
    picture = "data:image/svg+xml;charset=utf-8," + _url_quote(static_svg(spec))
    label = html.escape(str(spec.get("description", "chart")), quote=True)
    # "</" may not appear inside a script element: JSON escapes it as "<\/"
    data = json.dumps(spec, allow_nan=False, default=str).replace("</", "<\\/")
    bundle = f"<script>{vega_bundle()}</script>\n" if with_bundle else ""
    return f"""<div class="devformance-chart" id="{box}" data-state="static">\
<img class="devformance-static" alt="{label}" src="{picture}"></div>
{bundle}<script>
(function () {{
  var box = document.getElementById("{box}");
  var spec = {data};
  var deadline = Date.now() + {BUNDLE_WAIT_S * 1000};
  function draw() {{
    if (typeof window.vegaEmbed !== "function") {{
      // the bundle comes with the first chart; it may still be loading
      if (Date.now() < deadline) {{ setTimeout(draw, 100); }}
      return;
    }}
    var live = document.createElement("div");
    live.className = "devformance-live";
    box.appendChild(live);
    window.vegaEmbed(live, spec, {{renderer: "svg", actions: false}}).then(function () {{
      var still = box.querySelector(".devformance-static");
      if (still) {{ still.remove(); }}
      box.setAttribute("data-state", "interactive");
    }}).catch(function (error) {{
      live.remove();  // the static picture stays
      box.setAttribute("data-state", "static");
      box.setAttribute("data-error", String(error));
    }});
  }}
  if (box) {{ draw(); }}
}})();
</script>"""


def _url_quote(svg: str) -> str:
    from urllib.parse import quote

    return quote(svg, safe=" =:/;,'")


def render(spec: dict[str, Any], **options: Any) -> dict[str, str] | Any:
    """Altair renderer: our charts offline (static + interactive), others to the fallback."""
    if not is_ours(spec):
        # enabled by hand, never through enable(): what Altair shows by default
        fallback = _STATE.fallback or _default_renderer()
        return fallback(spec, **options)
    with _STATE.lock:
        with_bundle = not _STATE.bundle_sent
        _STATE.bundle_sent = True
    themed_spec = themed(spec)
    return {
        "text/html": chart_html(themed_spec, with_bundle),
        "text/plain": f"<{MARK} chart: {themed_spec.get('description', '')}>",
    }


def _default_renderer() -> _Renderer:
    with alt.renderers.enable("default"):
        default = alt.renderers.get()
    assert default is not None  # Altair always registers "default"
    return default


def enable() -> None:
    """Show devformance_nb's charts offline from now on; other charts render as before.

    Idempotent. If another renderer was enabled since the last call, it becomes the one
    every other chart uses.
    """
    with _STATE.lock:
        if alt.renderers.active == RENDERER:
            return
        _STATE.fallback = alt.renderers.get() or _default_renderer()
        if RENDERER not in alt.renderers.names():
            alt.renderers.register(RENDERER, render)
        alt.renderers.enable(RENDERER)


def resend_bundle() -> None:
    """Make the next chart carry the Vega bundle again (after reloading the browser page)."""
    with _STATE.lock:
        _STATE.bundle_sent = False
