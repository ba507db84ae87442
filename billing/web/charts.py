"""A small server-side SVG line chart: no script, nothing from a CDN.

The lines are drawn in SVG, which scales with the page; everything there is to read (the
scale, the days, the legend) is HTML beside it, so it stays the page's own size on a
phone where an SVG's text would shrink to a few pixels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, PAD = 640, 240, 8
COLOURS = ["#23395d", "#c2410c", "#15803d", "#7c3aed"]
AXIS = 'stroke="#5f6877"'


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: list[int]  # one per day, minor units
    dashed: bool = False
    colour: int = 0


def line_chart(
    title: str,
    days: Sequence[str],
    series: Sequence[Series],
    amount: Callable[[int], str] = str,
    key: str = "chart",
) -> str:
    """A <figure>: the SVG lines (a named image, one titled polyline per series) and, as
    text, the highest day's amount, the first and last day, and the legend. `key` makes
    the ids unique when a page shows several charts."""
    top = max([max(s.values, default=0) for s in series] + [1])
    step = (WIDTH - 2 * PAD) / max(len(days) - 1, 1)
    base = HEIGHT - PAD

    def point(index: int, value: int) -> str:
        return f"{PAD + index * step:.1f},{base - (value / top) * (HEIGHT - 2 * PAD):.1f}"

    title_id = f"{escape(key)}-title"
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'preserveAspectRatio="none" role="img" aria-labelledby="{title_id}" class="chart">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<line x1="{PAD}" y1="{base}" x2="{WIDTH - PAD}" y2="{base}" {AXIS}/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{base}" {AXIS}/>',
    ]
    legend = []
    for item in series:
        colour = COLOURS[item.colour % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        points = " ".join(point(i, v) for i, v in enumerate(item.values))
        svg.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'vector-effect="non-scaling-stroke"{dash} points="{points}">'
            f"<title>{escape(item.label)}</title></polyline>"
        )
        legend.append(
            '<li><svg class="swatch" viewBox="0 0 28 8" aria-hidden="true" focusable="false">'
            f'<line x1="0" y1="4" x2="28" y2="4" stroke="{colour}" stroke-width="3"{dash}/>'
            f"</svg>{escape(item.label)}</li>"
        )
    svg.append("</svg>")
    scale = f"Highest day {escape(amount(top))}" if any(any(s.values) for s in series) else ""
    span = f"{escape(days[0])} to {escape(days[-1])}" if days else ""
    return (
        f'<figure class="chart" aria-labelledby="{title_id}-caption">'
        f'<figcaption id="{title_id}-caption">{escape(title)}</figcaption>'
        f'<p class="chart-scale">{" · ".join(p for p in (scale, span) if p)}</p>'
        f"{''.join(svg)}"
        f'<ul class="legend">{"".join(legend)}</ul>'
        "</figure>"
    )
