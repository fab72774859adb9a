"""Charts as inline SVG, drawn on the server: they need no script, print as they look and work on a closed
network. Each function takes plain numbers and labels and returns markup with every label escaped."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

PALETTE = ["#0f766e", "#2563eb", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#65a30d", "#db2777"]
STATE_COLORS = {
    "running": "#15803d",
    "setup": "#1d4ed8",
    "idle": "#a3a3a3",
    "down": "#dc2626",
    "maintenance": "#b45309",
    "offline": "#404040",
}


def short(name: str, limit: int = 20) -> str:
    """Axis labels stay on the chart; the full name is in the page around it."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" style="max-width:{width}px" role="img" '
        f'aria-label="{escape(label)}" '
        f'xmlns="http://www.w3.org/2000/svg" font-size="11" font-family="inherit">{"".join(body)}</svg>'
    )


def line_chart(
    x_labels: Sequence[str], series: dict[str, Sequence[float | None]], label: str, y_max: float = 1.0
) -> Markup:
    """Shares (0..y_max) over periods, one line per series; a gap where a value is undefined."""
    width, height, left, bottom, top, right = 720, 260, 44, 40, 12, 150
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(x_labels) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + plot_w * i / n, top + plot_h * (1 - min(v, y_max) / y_max)

    body = []
    for k in range(5):
        y = top + plot_h * k / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{100 * y_max * (1 - k / 4):.0f}%</text>')
    step = max(1, len(x_labels) // 10)
    for i, text in enumerate(x_labels):
        if i % step == 0:
            x, _ = xy(i, 0)
            body.append(f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(text)}</text>')
    for j, (name, values) in enumerate(series.items()):
        color = PALETTE[j % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
            else:
                x, y = xy(i, v)
                runs[-1].append(f"{x:.1f},{y:.1f}")
        for run in runs:
            if len(run) > 1:
                body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>')
            elif run:
                cx, cy = run[0].split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
        ly = top + 14 * j + 6
        body.append(f'<rect x="{left + plot_w + 10}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        body.append(f'<text x="{left + plot_w + 24}" y="{ly + 1}">{escape(name)}</text>')
    return _svg(width, height, body, label)


FONT_PX = 11
CHAR_PX = 7  # the widest digit or Latin letter at FONT_PX, a CJK character counts twice


def text_px(text: str) -> float:
    """A generous width of `text` at FONT_PX, so labels placed this far apart never touch."""
    return sum(2 * CHAR_PX if ord(c) > 0x2E7F else CHAR_PX for c in text)


def label_step(labels: Sequence[str], pitch: float) -> int:
    """Show every n-th of labels `pitch` pixels apart, n the smallest that leaves a gap of half the font size."""
    widest = max((text_px(t) for t in labels), default=0.0)
    return max(1, math.ceil((widest + FONT_PX / 2) / pitch))


def heat_map(
    rows: Sequence[str], columns: Sequence[str], values: dict[tuple[str, str], float | None], label: str
) -> Markup:
    """Shares per row and column, from white (0) to dark teal (1 and above); blank where undefined. Cells are as
    wide as a label while they fit and narrow as columns grow (92 days still fit a screen); column labels are
    then thinned to every n-th so none overlap, and every cell names its row, column and value on hover."""
    label_w = math.ceil(max((text_px(c) for c in columns), default=0.0) + FONT_PX / 2)
    cell_w = max(12, min(label_w, 1100 // max(1, len(columns))))  # a label per column while they fit
    cell_h, top = 22, 36
    left = int(max((text_px(r) for r in rows), default=0.0)) + 16
    width, height = left + cell_w * len(columns) + 10, top + cell_h * len(rows) + 10
    body = []
    step = label_step(columns, cell_w)
    for c, column in enumerate(columns):
        if c % step == 0:
            x = left + c * cell_w + cell_w / 2
            body.append(f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle">{escape(column)}</text>')
    for r, row in enumerate(rows):
        y = top + r * cell_h
        body.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(row)}</text>')
        for c, column in enumerate(columns):
            value = values.get((row, column))
            x = left + c * cell_w
            if value is None:
                fill, title = "#f1f5f9", "–"
            else:
                share = max(0.0, min(1.0, value))
                fill = f"rgb({int(255 - 240 * share)},{int(255 - 137 * share)},{int(255 - 145 * share)})"
                title = f"{100 * value:.0f}%"
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{fill}" stroke="#cbd5e1">'
                f"<title>{escape(row)} {escape(column)}: {title}</title></rect>"
            )
    return _svg(width, height, body, label)


@dataclass(frozen=True)
class Bar:
    row: str
    start: float  # seconds from the window's start
    end: float
    kind: str  # "booking" or a machine state
    title: str = ""


def state_bars(
    row: str, spans: Iterable[Mapping[str, Any]], origin: datetime, label: Callable[[str], str]
) -> list[Bar]:
    """A state timeline (rows of state, start, end) as bars of one Gantt row, in seconds from `origin`."""
    return [
        Bar(
            row,
            (s["start"] - origin).total_seconds(),
            (s["end"] - origin).total_seconds(),
            s["state"],
            label(s["state"]),
        )
        for s in spans
    ]


def gantt(
    rows: Sequence[str],
    span_s: float,
    ticks: Sequence[tuple[float, str]],
    bars: Sequence[Bar],
    label: str,
    links: Mapping[str, str] | None = None,
) -> Markup:
    """Per device: its bookings as a bar, and under it the machine's measured states. Tick labels are thinned
    so none overlap; a tick whose text is in `links` links there (a day's label zooms to that day)."""
    left, top, lane, width = 160, 24, 30, 900
    plot_w = width - left - 10
    height = top + lane * len(rows) + 10
    index = {row: i for i, row in enumerate(rows)}
    body = []
    pitch = plot_w * min((b[0] - a[0] for a, b in itertools.pairwise(ticks)), default=span_s) / span_s
    step = label_step([text for _, text in ticks], pitch) if ticks else 1
    for n, (at, text) in enumerate(ticks):
        x = left + plot_w * at / span_s
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{height - 10}" stroke="#e5e7eb"/>')
        if n % step:
            continue
        tick = f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle">{escape(text)}</text>'
        href = (links or {}).get(text)
        body.append(f'<a href="{escape(href)}">{tick}</a>' if href else tick)
    for row, i in index.items():
        body.append(f'<text x="{left - 6}" y="{top + lane * i + 18}" text-anchor="end">{escape(row)}</text>')
    for bar in bars:
        if bar.row not in index or bar.end <= bar.start:
            continue
        x = left + plot_w * max(0.0, bar.start) / span_s
        w = max(0.5, plot_w * (min(span_s, bar.end) - max(0.0, bar.start)) / span_s)
        y = top + lane * index[bar.row]
        if bar.kind == "booking":
            shape = f'x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="12" fill="#94a3b8" rx="2"'
        else:
            shape = (
                f'x="{x:.1f}" y="{y + 16}" width="{w:.1f}" height="8" fill="{STATE_COLORS.get(bar.kind, "#737373")}"'
            )
        body.append(f"<rect {shape}><title>{escape(bar.title or bar.kind)}</title></rect>")
    return _svg(width, height, body, label)


def pareto(items: Sequence[tuple[str, float, float]], label: str, unit: str = "h") -> Markup:
    """Bars largest first (value in hours), with the cumulative share as a line."""
    width, height, left, bottom, top = 720, 260, 44, 60, 24
    plot_w, plot_h = width - left - 50, height - top - bottom
    biggest = max((v for _, v, _ in items), default=0.0) or 1.0
    n = max(1, len(items))
    bar_w = plot_w / n
    body = [f'<text x="{left}" y="{top - 2}">{biggest:.1f} {escape(unit)}</text>']
    points = []
    for i, (name, value, cumulative) in enumerate(items):
        h = plot_h * value / biggest
        x = left + i * bar_w
        body.append(
            f'<rect x="{x + 3:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 6:.1f}" height="{h:.1f}" fill="#0f766e">'
            f"<title>{escape(name)}: {value:.2f} {escape(unit)}</title></rect>"
        )
        body.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(name[:14])}</text>'
        )
        points.append(f"{x + bar_w / 2:.1f},{top + plot_h * (1 - cumulative):.1f}")
    if points:
        body.append(f'<polyline fill="none" stroke="#d97706" stroke-width="2" points="{" ".join(points)}"/>')
        body.append(f'<text x="{left + plot_w + 6}" y="{top + 4}">100%</text>')
    return _svg(width, height, body, label)


def grouped_bars(groups: Sequence[str], series: Mapping[str, Sequence[float]], label: str, unit: str) -> Markup:
    """Bars per group (e.g. a month), one per series (e.g. a device class) side by side, with a legend."""
    width, height, left, bottom, top, right = 720, 240, 56, 30, 20, 150
    plot_w, plot_h = width - left - right, height - top - bottom
    biggest = max((v for values in series.values() for v in values), default=0.0) or 1.0
    group_w = plot_w / max(1, len(groups))
    bar_w = (group_w - 12) / max(1, len(series))
    body = [f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{biggest:.0f}</text>',
            f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>',
            f'<text x="{left}" y="{top - 6}">{escape(unit)}</text>']  # fmt: skip
    for g, group in enumerate(groups):
        x0 = left + g * group_w + 6
        body.append(
            f'<text x="{x0 + (group_w - 12) / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{escape(group)}</text>"
        )
        for j, (name, values) in enumerate(series.items()):
            h = plot_h * values[g] / biggest
            body.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
                f'height="{h:.1f}" fill="{PALETTE[j % len(PALETTE)]}">'
                f"<title>{escape(name)} {escape(group)}: {values[g]:.1f} {escape(unit)}</title></rect>"
            )
    for j, name in enumerate(series):
        ly = top + 14 * j + 6
        body.append(f'<rect x="{left + plot_w + 10}" y="{ly - 8}" width="10" height="10" fill="{PALETTE[j % 8]}"/>')
        body.append(f'<text x="{left + plot_w + 24}" y="{ly + 1}">{escape(name)}</text>')
    return _svg(width, height, body, label)


def against_caps(rows: Sequence[tuple[str, float, float]], label: str, unit: str) -> Markup:
    """One horizontal bar per row: the amount used as a share of its cap (the full track), the figures beside."""
    left, lane, track = int(max((text_px(r[0]) for r in rows), default=0.0)) + 16, 24, 360
    width, height = left + track + 200, 10 + lane * len(rows)
    body = []
    for i, (name, used, cap) in enumerate(rows):
        y = 6 + i * lane
        share = max(0.0, min(1.0, used / cap)) if cap else 0.0
        color = "#dc2626" if share >= 0.9 else "#0f766e"
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(name)}</text>')
        body.append(f'<rect x="{left}" y="{y}" width="{track}" height="16" fill="#e5e7eb"/>')
        body.append(
            f'<rect x="{left}" y="{y}" width="{track * share:.1f}" height="16" fill="{color}">'
            f"<title>{escape(name)}: {used:,.2f} / {cap:,.2f} {escape(unit)}</title></rect>"
        )
        body.append(f'<text x="{left + track + 8}" y="{y + 13}">{used:,.0f} / {cap:,.0f} {escape(unit)}</text>')
    return _svg(width, height, body, label)
