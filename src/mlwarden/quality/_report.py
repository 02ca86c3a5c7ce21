"""A profile for people: a JSON-friendly summary, and a self-contained HTML page.

The page has no script and loads nothing (a Content-Security-Policy says so to the browser too), and
every value in it is HTML-escaped: column names, strings and frequent values are whatever the data's
source put there, and a profile report must not become a way to run script in a reviewer's browser.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from mlwarden.quality._codec import json_float
from mlwarden.quality.profile import ColumnProfile, Profile

PERCENTILES = {"p01": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}
TOP = 5
BINS = 20
SHOWN_CHARS = 120  # longer values are cut in the page (the JSON summary keeps them whole)
_UNITS = {
    "date": "days since 1970-01-01",
    "timestamp": "microseconds since 1970-01-01 (wall clock)",
    "timestamp_utc": "microseconds since 1970-01-01T00:00:00Z",
    "bool": "false = 0, true = 1",
}


def summary(profile: Profile) -> dict[str, Any]:
    return {"rows": profile.rows, "columns": [column_summary(c) for c in profile.columns]}


def column_summary(c: ColumnProfile) -> dict[str, Any]:
    std = None if c.variance is None else math.sqrt(c.variance)
    result: dict[str, Any] = {
        "name": c.name,
        "type": c.type,
        "count": c.count,
        "nulls": c.nulls,
        "nan": c.nan,
        "inf": c.inf,
        "min": c.minimum,
        "max": c.maximum,
        "mean": json_float(c.mean),
        "std": json_float(std),
    }
    result.update({key: c.quantile(q) for key, q in PERCENTILES.items()})
    result["distinct"] = round(c.distinct_estimate())
    result["top"] = [{"value": v, "count": low, "upper": high} for v, low, high in c.top(TOP)]
    if c.lengths is not None:
        mean = c.lengths.total / (c.count - c.nulls)
        result["length"] = {"min": c.lengths.minimum, "max": c.lengths.maximum, "mean": mean}
    if c.type in _UNITS:
        result["unit"] = _UNITS[c.type]
    return result


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
section{border:1px solid #ccc;border-radius:6px;padding:1em;margin:1em 0;display:inline-block;
vertical-align:top;min-width:22em;margin-right:1em}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;font-size:90%}
th{color:#555;font-weight:normal}td{font-family:ui-monospace,monospace}
h2{font-size:110%;margin:0 0 .5em;word-break:break-all}svg rect{fill:#4a7bb7}
"""


def html(profile: Profile, title: str) -> str:
    sections = "\n".join(_section(c) for c in profile.columns)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{_text(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_text(title)}</h1><p>{profile.rows:,} rows, {len(profile.columns)} columns</p>\n"
        f"{sections}\n</body></html>\n"
    )


def _section(c: ColumnProfile) -> str:
    info = column_summary(c)
    rows = [
        f"<tr><th>{_text(key)}</th><td>{_text(_shown(value))}</td></tr>"
        for key, value in info.items()
        if key not in ("name", "type", "top", "length") and value is not None
    ]
    if "length" in info:
        lengths = info["length"]
        rows.append(f"<tr><th>bytes</th><td>{lengths['min']}..{lengths['max']}, mean {lengths['mean']:.4g}</td></tr>")
    top = "".join(
        f"<tr><td>{_text(item['value'])}</td><td>{item['count']}..{item['upper']}</td></tr>" for item in info["top"]
    )
    top_table = f"<h3>top values</h3><table><tr><th>value</th><th>count</th></tr>{top}</table>" if top else ""
    return (
        f"<section><h2>{_text(c.name)} <small>{_text(c.type)}</small></h2>{_histogram(c)}"
        f"<table>{''.join(rows)}</table>{top_table}</section>"
    )


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _text(value: Any) -> str:
    text = str(value)
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS] + "\u2026"
    return escape(text, quote=True)


def _histogram(c: ColumnProfile, width: int = 240, height: int = 60) -> str:
    """An inline SVG bar per bin of ``ColumnProfile.histogram`` (estimated masses, not counts)."""
    bins = c.histogram(BINS)
    if not bins:
        return ""
    step = width / len(bins)
    tallest = max(mass for _, _, mass in bins) or 1.0
    bars = []
    for i, (low, high, mass) in enumerate(bins):
        h = height * mass / tallest
        tip = escape(f"{low:.6g} to {high:.6g}: {mass:.2%}")
        bars.append(
            f'<rect x="{i * step:.2f}" y="{height - h:.2f}" width="{max(step - 1, 1):.2f}" height="{h:.2f}">'
            f"<title>{tip}</title></rect>"
        )
    low, high = bins[0][0], bins[-1][1]
    label = escape(f"histogram of {c.name}: {low:.6g} to {high:.6g}", quote=True)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{label}">{"".join(bars)}</svg>'
        f"<div><small>{low:.6g} \u2026 {high:.6g}</small></div>"
    )
