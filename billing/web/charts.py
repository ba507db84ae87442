"""A small server-side SVG line chart: no script, nothing from a CDN."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, PAD = 640, 260, 40
COLOURS = ["#23395d", "#c2410c", "#15803d", "#7c3aed"]
AXIS = 'stroke="#9aa3b2"'
SMALL = 'font-size="11" fill="#4a5468"'


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
) -> str:
    """An accessible SVG: a <title>, axes, one polyline per series and a legend."""
    top = max([max(s.values, default=0) for s in series] + [1])
    step = (WIDTH - 2 * PAD) / max(len(days) - 1, 1)
    base = HEIGHT - PAD

    def point(index: int, value: int) -> str:
        return f"{PAD + index * step:.1f},{base - (value / top) * (HEIGHT - 2 * PAD):.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT + 30}" '
        'role="img" aria-labelledby="chart-title" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<line x1="{PAD}" y1="{base}" x2="{WIDTH - PAD}" y2="{base}" {AXIS}/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{base}" {AXIS}/>',
        f'<text x="{PAD + 4}" y="{PAD + 12}" {SMALL}>max {escape(amount(top))}</text>',
    ]
    if days:
        parts.append(f'<text x="{PAD}" y="{base + 16}" {SMALL}>{escape(days[0])}</text>')
        parts.append(
            f'<text x="{WIDTH - PAD}" y="{base + 16}" {SMALL} text-anchor="end">'
            f"{escape(days[-1])}</text>"
        )
    for number, item in enumerate(series):
        colour = COLOURS[item.colour % len(COLOURS)]
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        points = " ".join(point(i, v) for i, v in enumerate(item.values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}">'
            f"<title>{escape(item.label)}</title></polyline>"
        )
        x, y = PAD + number * 150, HEIGHT + 10
        parts.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 20}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"{dash}/><text x="{x + 26}" y="{y + 4}" font-size="11" '
            f'fill="#1d2433">{escape(item.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
