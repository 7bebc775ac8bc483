"""The run as one self-contained HTML page for auditors and installers.

No scripts, fonts or images from elsewhere: the page reads offline and prints. Everything that
comes from the run goes through Jinja2 autoescaping; the only markup built here is the SVG
latency chart, made of numbers and escaped labels.
"""

from __future__ import annotations

import math
from importlib import resources

import jinja2
from markupsafe import Markup, escape

from amicheck.report.model import SEVERITIES, Metric, Outcome, RunReport

__all__ = ["to_html", "latency_chart", "percentile"]

_TEMPLATE = "report.html.j2"
_W, _H, _PAD_L, _PAD_B, _PAD_T, _PAD_R = 640, 240, 48, 36, 44, 90


def percentile(samples: list[float] | tuple[float, ...], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of non-empty ``samples``."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_chart(metric: Metric, bins: int = 24) -> Markup:
    """An inline SVG histogram of ``metric.samples`` with p50/p95/p99 marked."""
    samples = [s for s in metric.samples if math.isfinite(s)]
    if not samples:
        return Markup("")
    lo, hi = min(samples), max(samples)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for s in samples:
        counts[min(bins - 1, int((s - lo) / span * bins))] += 1
    top = max(counts)
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_B - _PAD_T
    bar_w = plot_w / bins
    unit = escape(metric.unit)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}" role="img" aria-label="{escape(metric.name)} distribution">',
        f"<title>{escape(metric.name)}: {len(samples)} samples</title>",
        f'<line x1="{_PAD_L}" y1="{_PAD_T + plot_h}" x2="{_PAD_L + plot_w}" '
        f'y2="{_PAD_T + plot_h}" class="axis"/>',
        f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_PAD_T + plot_h}" class="axis"/>',
    ]
    for i, n in enumerate(counts):
        if not n:
            continue
        h = n / top * plot_h
        x, y = _PAD_L + i * bar_w, _PAD_T + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
            f'class="bar"><title>{n}</title></rect>'
        )
    for row, q in enumerate((50, 95, 99)):  # one label row each: close values don't overlap
        v = percentile(samples, q)
        x = _PAD_L + (v - lo) / span * plot_w
        y = 12 + 12 * row
        parts.append(
            f'<line x1="{x:.1f}" y1="{y + 2}" x2="{x:.1f}" y2="{_PAD_T + plot_h}" '
            f'class="pct"/><text x="{x + 3:.1f}" y="{y}" class="lbl">'
            f"p{q} {v:.3g} {unit}</text>"
        )
    parts += [
        f'<text x="{_PAD_L}" y="{_H - 12}" class="lbl">{lo:.3g} {unit}</text>',
        f'<text x="{_PAD_L + plot_w}" y="{_H - 12}" class="lbl" text-anchor="end">'
        f"{hi:.3g} {unit}</text>",
        f'<text x="{_PAD_L - 6}" y="{_PAD_T + 8}" class="lbl" text-anchor="end">{top}</text>',
        f'<text x="{_PAD_L - 6}" y="{_PAD_T + plot_h}" class="lbl" text-anchor="end">0</text>',
        "</svg>",
    ]
    return Markup("".join(parts))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["chart"] = latency_chart
    return env


def _load_template(name: str) -> str:
    return resources.files("amicheck.report").joinpath("templates", name).read_text("utf-8")


def to_html(report: RunReport) -> str:
    """Render the report as one HTML document (pure: returns the text)."""
    charts = [(r, m) for r in report.results for m in r.metrics if len(m.samples) >= 2]
    return (
        _environment()
        .get_template(_TEMPLATE)
        .render(
            report=report,
            counts=report.counts(),
            by_severity=report.counts_by_severity(),
            severities=SEVERITIES,
            outcomes=list(Outcome),
            problems=report.problems(),
            areas=report.by_area(),
            charts=charts,
            Outcome=Outcome,
        )
    )
