"""Bar charts as inline SVG for the period report: no script, no external file, readable when printed.

Each chart is an `<svg role="img">` with a `<title>` and a `<desc>` that says the figures in words,
so a screen reader and a text search both find them; every bar carries its value as a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 640
BAR_AREA = 180  # height of the tallest bar, in SVG units
TOP, BOTTOM, LEFT = 36, 46, 12
LEGEND = 32


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    colour: str


def _ceiling(value: int) -> int:
    """The top of the scale: the largest value, at least 1 so an empty chart still draws."""
    return max(value, 1)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[Series], description: str) -> str:
    """Grouped bars: one group per category, one bar per series, each labelled with its value."""
    groups = max(len(categories), 1)
    per_group = (WIDTH - 2 * LEFT) / groups
    bar = min(48.0, per_group * 0.8 / max(len(series), 1))
    top = _ceiling(max((v for s in series for v in s.values), default=0))
    height = TOP + LEGEND + BAR_AREA + BOTTOM
    base = TOP + LEGEND + BAR_AREA
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(description)}</desc>",
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    x = LEFT
    for s in series:
        parts.append(f'<rect x="{x}" y="{TOP}" width="12" height="12" fill="{s.colour}"/>')
        parts.append(f'<text x="{x + 16}" y="{TOP + 10}">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - LEFT}" y2="{base}" stroke="#444"/>')
    for index, category in enumerate(categories):
        start = LEFT + index * per_group + (per_group - bar * len(series)) / 2
        for position, s in enumerate(series):
            value = s.values[index]
            tall = BAR_AREA * value / top
            left = start + position * bar
            parts.append(
                f'<rect x="{left:.1f}" y="{base - tall:.1f}" width="{bar - 2:.1f}" height="{tall:.1f}" '
                f'fill="{s.colour}"><title>{escape(category)}, {escape(s.name)}: {value}</title></rect>'
            )
            parts.append(
                f'<text x="{left + (bar - 2) / 2:.1f}" y="{base - tall - 4:.1f}" text-anchor="middle">{value}</text>'
            )
        middle = LEFT + index * per_group + per_group / 2
        parts.append(f'<text x="{middle:.1f}" y="{base + 18}" text-anchor="middle">{escape(category)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def share_bar(title: str, share: float | None, label: str) -> str:
    """One horizontal gauge from 0 to 100 %; `share` None draws an empty gauge marked "—"."""
    width = WIDTH - 2 * LEFT
    filled = width * (share or 0.0)
    text = "—" if share is None else f"{share * 100:.1f} %"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} 70" width="{WIDTH}" height="70" '
        f'font-family="sans-serif" font-size="12"><title>{escape(title)}</title>'
        f"<desc>{escape(label)}: {text}</desc>"
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="600">{escape(title)}</text>'
        f'<rect x="{LEFT}" y="28" width="{width}" height="22" fill="#e6e6e6"/>'
        f'<rect x="{LEFT}" y="28" width="{filled:.1f}" height="22" fill="#1f6f43"/>'
        f'<text x="{LEFT + 6}" y="44" fill="#111">{escape(label)}: {text}</text></svg>'
    )
