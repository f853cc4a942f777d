"""Small inline SVG charts for report.html: paired dots per seed, lines over steps.

Hand-written SVG rather than matplotlib PNGs because each mark carries what a reader hovers for
(``<title>``: the seed and its value) and a link to the run it came from, a page of dozens of
charts stays a few hundred kilobytes, and drawing them costs milliseconds, not seconds.
Every function returns one ``<svg>`` element as a string; the text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22")  # fmt: skip
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if step * m >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    a = abs(v)
    return f"{v:.2e}" if a and (a < 1e-3 or a >= 1e5) else f"{v:.4g}"


class _Frame:
    """Plot area and the linear maps from data to pixels."""

    def __init__(self, w: int, h: int, ys: Sequence[float], bottom: int = 36):
        self.w, self.h, self.top, self.bottom = w, h, 12, bottom
        finite = [y for y in ys if math.isfinite(y)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.08 or 1.0
        self.lo, self.hi = lo - pad, hi + pad
        widest = max((len(_fmt(t)) for t in _ticks(self.lo, self.hi)), default=3)
        self.left = 26 + 7 * widest  # room for the tick labels and the axis label

    def y(self, v: float) -> float:
        span = self.h - self.top - self.bottom
        return self.top + span * (self.hi - v) / (self.hi - self.lo)

    def axis(self, label: str) -> list[str]:
        out = [f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" '
               f'y2="{self.h - self.bottom}" stroke="#888"/>']  # fmt: skip
        for t in _ticks(self.lo, self.hi):
            y = self.y(t)
            out.append(f'<line x1="{self.left - 3}" y1="{y:.1f}" x2="{self.w - 8}" y2="{y:.1f}" '
                       f'stroke="#eee"/><text x="{self.left - 5}" y="{y + 4:.1f}" '
                       f'text-anchor="end">{_fmt(t)}</text>')  # fmt: skip
        out.append(f'<text x="12" y="{self.top + (self.h - self.bottom) / 2:.0f}" '
                   f'transform="rotate(-90 12 {self.top + (self.h - self.bottom) / 2:.0f})" '
                   f'text-anchor="middle">{escape(label)}</text>')  # fmt: skip
        return out


def _svg(w: int, h: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{escape(label)}" {FONT}>'
            + "".join(body) + "</svg>")  # fmt: skip


def paired_dots(
    columns: Sequence[str],
    series: dict[str, list[float]],
    *,
    ylabel: str,
    marked: int | None = None,
    links: dict[str, list[str | None]] | None = None,
    width: int | None = None,
    height: int = 220,
) -> str:
    """One dot per series (a seed, a clip) and column (a point, a pass), a line joining a series
    across columns; NaN: no dot, and the line breaks. ``marked``: the column drawn as the
    reference (bold label, shaded); ``links``: per series, per column, the href of its dot."""
    w = width or max(220, 80 + 110 * len(columns))
    ys = [v for vals in series.values() for v in vals]
    f = _Frame(w, height, ys)
    step = (w - f.left - 20) / max(1, len(columns))
    x = [f.left + step * (i + 0.5) for i in range(len(columns))]
    body = f.axis(ylabel)
    if marked is not None:
        body.insert(0, f'<rect x="{x[marked] - step / 2:.1f}" y="{f.top}" width="{step:.1f}" '
                       f'height="{height - f.top - f.bottom}" fill="#f3f6fb"/>')  # fmt: skip
    for i, name in enumerate(columns):
        weight = ' font-weight="bold"' if i == marked else ""
        ref = " (reference)" if i == marked else ""
        body.append(f'<text x="{x[i]:.1f}" y="{height - f.bottom + 16}" text-anchor="middle"'
                    f'{weight}>{escape(_short(name) + ref)}<title>{escape(name)}</title></text>')  # fmt: skip
    for k, (label, vals) in enumerate(series.items()):
        c = colour(k)
        pts = [(x[i], f.y(v)) if math.isfinite(v) else None for i, v in enumerate(vals)]
        for a, b in zip(pts, pts[1:], strict=False):
            if a and b:
                body.append(f'<line x1="{a[0]:.1f}" y1="{a[1]:.1f}" x2="{b[0]:.1f}" '
                            f'y2="{b[1]:.1f}" stroke="{c}" stroke-opacity="0.55"/>')  # fmt: skip
        for i, p in enumerate(pts):
            if p is None:
                continue
            dot = (f'<circle class="dot" cx="{p[0]:.1f}" cy="{p[1]:.1f}" r="4" fill="{c}" '
                   f'data-series="{escape(label)}" data-column="{escape(columns[i])}" '
                   f'data-value="{vals[i]!r}"><title>{escape(label)}, {escape(columns[i])}: '
                   f'{_fmt(vals[i])}</title></circle>')  # fmt: skip
            href = ((links or {}).get(label) or [None] * len(columns))[i]
            body.append(f'<a href="{escape(href)}">{dot}</a>' if href else dot)
    return _svg(w, height, body, ylabel)


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def lines(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    *,
    xlabel: str,
    ylabel: str,
    width: int = 460,
    height: int = 240,
) -> str:
    """Polylines (label, xs, ys, colour), e.g. one per seed; hover a line for its label."""
    ys = [v for _, _, y, _ in series for v in y]
    xs = [v for _, x, _, _ in series for v in x if math.isfinite(v)]
    f = _Frame(width, height, ys)
    x0, x1 = (min(xs), max(xs)) if xs else (0.0, 1.0)
    x1 = x1 if x1 > x0 else x0 + 1

    def px(v: float) -> float:
        return f.left + (width - f.left - 10) * (v - x0) / (x1 - x0)

    body = f.axis(ylabel)
    for t in _ticks(x0, x1):
        body.append(f'<text x="{px(t):.1f}" y="{height - f.bottom + 14}" '
                    f'text-anchor="middle">{_fmt(t)}</text>')  # fmt: skip
    body.append(f'<text x="{(f.left + width) / 2:.0f}" y="{height - 6}" '
                f'text-anchor="middle">{escape(xlabel)}</text>')  # fmt: skip
    for label, x, y, c in series:
        pts = " ".join(f"{px(a):.1f},{f.y(b):.1f}" for a, b in zip(x, y, strict=True)
                       if math.isfinite(a) and math.isfinite(b))  # fmt: skip
        if pts:
            body.append(f'<polyline class="curve" points="{pts}" fill="none" stroke="{c}" '
                        f'stroke-width="1.3" stroke-opacity="0.8" data-series="{escape(label)}">'
                        f"<title>{escape(label)}</title></polyline>")  # fmt: skip
    return _svg(width, height, body, ylabel)
