"""Disclosures and denials over time by recipient, drawn as inline SVG on the server.

People would rather look than read; an SVG written here needs no script, no CDN and no build
step, prints, and carries its numbers as text (a <title> per bar) for screen readers.
"""

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from html import escape

from interop.services.console_review import Decision

_DAYS = 14
_TOP = 5
_BAR = 8
_GAP = 4
_ROW = 70
_LABEL = 220
_RELEASED = "#1f5f8b"  # both colours keep 4.5:1 against white (WCAG AA for the legend text)
_WITHHELD = "#a33a00"


def disclosure_chart(decisions: Sequence[Decision]) -> str:
    """Per recipient (the busiest five), released and withheld per day over the last 14 days
    that end on the newest decision shown."""
    decisions = [d for d in decisions if d.readable and not d.is_review]  # no day, no recipient
    if not decisions:
        return ""
    last = max(date.fromisoformat(d.day) for d in decisions)
    days = [last - timedelta(days=n) for n in range(_DAYS - 1, -1, -1)]
    busiest = [r for r, _ in Counter(d.requester for d in decisions).most_common(_TOP)]
    counts = Counter((d.requester, d.day, d.released) for d in decisions)
    peak = max(counts.values())
    width = _LABEL + len(days) * (2 * _BAR + _GAP) + 10
    height = len(busiest) * _ROW + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="chart-title"><title id="chart-title">Disclosures released and '
        f"withheld per day by recipient, {days[0]} to {days[-1]}</title>"
    ]
    for row, recipient in enumerate(busiest):
        parts.append(_row(row, recipient, days, counts, peak))
    parts.append(_legend(height - 16, days))
    parts.append("</svg>")
    return "".join(parts)


def _row(
    row: int,
    recipient: str,
    days: list[date],
    counts: Counter[tuple[str, str, bool]],
    peak: int,
) -> str:
    base = row * _ROW + _ROW - 10
    parts = [
        f'<text x="0" y="{base - 20}" font-size="13" fill="#1a1a1a">'
        f"{escape(recipient[:32])}</text>",
        f'<line x1="{_LABEL}" y1="{base}" x2="{_LABEL + len(days) * (2 * _BAR + _GAP)}" '
        f'y2="{base}" stroke="#555"/>',
    ]
    for column, day in enumerate(days):
        x = _LABEL + column * (2 * _BAR + _GAP)
        for offset, released in ((0, True), (_BAR, False)):
            count = counts.get((recipient, day.isoformat(), released), 0)
            if count:
                tall = max(2, round((_ROW - 20) * count / peak))
                colour = _RELEASED if released else _WITHHELD
                what = "released" if released else "withheld"
                parts.append(
                    f'<rect x="{x + offset}" y="{base - tall}" width="{_BAR - 1}" '
                    f'height="{tall}" fill="{colour}"><title>{escape(recipient)} {day}: '
                    f"{count} {what}</title></rect>"
                )
    return "".join(parts)


def _legend(y: int, days: list[date]) -> str:
    return (
        f'<rect x="0" y="{y - 10}" width="10" height="10" fill="{_RELEASED}"/>'
        f'<text x="14" y="{y}" font-size="12" fill="#1a1a1a">released</text>'
        f'<rect x="90" y="{y - 10}" width="10" height="10" fill="{_WITHHELD}"/>'
        f'<text x="104" y="{y}" font-size="12" fill="#1a1a1a">withheld</text>'
        f'<text x="{_LABEL}" y="{y}" font-size="12" fill="#1a1a1a">{days[0]} to {days[-1]}</text>'
    )
