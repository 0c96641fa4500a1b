"""One self-contained HTML page: inline CSS, charts as data: URIs, no network fetches.

A small inline script runs once the page has loaded and records on ``<body>`` how many
charts decoded and drew non-blank pixels (``data-charts``, ``data-charts-ok``); a chart
that fails to decode is reported with ``console.error``. The browser test reads these.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Iterable

import polars as pl

from pipeline.report.charts import Chart
from pipeline.report.data import Missing

CSS = """
:root { --fg: #1d232b; --muted: #5b6573; --line: #d9dee5; --bg: #ffffff; --accent: #b3261e; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); background: var(--bg); margin: 0 auto; max-width: 1180px; padding: 24px 28px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 36px 0 8px; padding-top: 12px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0; }
.sub { color: var(--muted); margin-bottom: 16px; }
.key { background: var(--soft); border-left: 4px solid var(--accent); padding: 10px 16px; margin: 16px 0; }
.key li { margin: 3px 0; }
.missing { color: var(--muted); font-style: italic; background: var(--soft); padding: 8px 12px; border-radius: 4px; }
.note { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.chain { max-width: 560px; }
tr.bad td { color: var(--accent); }
img.chart { display: block; max-width: 100%; height: auto; margin: 8px 0; border: 1px solid var(--line); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 8px 24px; }
code { background: var(--soft); padding: 0 3px; border-radius: 3px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""

CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("img.chart"), ok = 0;
  imgs.forEach(function (img) {
    var drawn = img.complete && img.naturalWidth > 0;
    if (drawn) {
      try {
        var c = document.createElement("canvas");
        c.width = Math.min(img.naturalWidth, 400); c.height = Math.min(img.naturalHeight, 300);
        var g = c.getContext("2d");
        g.drawImage(img, 0, 0, c.width, c.height);
        var d = g.getImageData(0, 0, c.width, c.height).data, first = d[0] + "," + d[1] + "," + d[2], varied = false;
        for (var i = 4; i < d.length; i += 4) {
          if (d[i] + "," + d[i + 1] + "," + d[i + 2] !== first) { varied = true; break; }
        }
        drawn = varied;
      } catch (e) { drawn = true; }
    }
    if (drawn) { ok += 1; } else { console.error("chart failed to render: " + img.dataset.chart); }
  });
  document.body.dataset.charts = imgs.length;
  document.body.dataset.chartsOk = ok;
  document.body.dataset.height = document.documentElement.scrollHeight;
});
"""


def esc(v: object) -> str:
    return html.escape(str(v), quote=True)


def fmt_ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_pct(v: float | None) -> str:
    if v is None:
        return "–"
    if v != 0 and abs(v) < 0.1:
        return f"{v:.3f}%"
    return f"{v:.1f}%"


def fmt_time(v: dt.datetime | None, with_date: bool = False) -> str:
    if v is None:
        return "–"
    return v.strftime("%Y-%m-%d %H:%M:%S.%f" if with_date else "%H:%M:%S.%f")[:-3]


def cell(name: str, v: object) -> tuple[str, bool]:
    """Text of a cell and whether it is numeric (right-aligned)."""
    if v is None:
        return "–", False
    if isinstance(v, bool):
        return ("yes" if v else "no"), False
    if isinstance(v, dt.datetime):
        return fmt_time(v), False
    if isinstance(v, float):
        if math.isnan(v):
            return "–", True
        if name.endswith("_ms"):
            return fmt_ms(v), True
        if name.endswith("pct") or name.startswith("pct"):
            return fmt_pct(v), True
        return f"{v:,.2f}", True
    if isinstance(v, int):
        if name in ("tid", "partition", "correlation_id", "client_port") or name.endswith(("_tid", "_id")):
            return str(v), True
        return f"{v:,}", True
    if isinstance(v, list):
        return ", ".join(str(x) for x in v), False
    return str(v), False


HEADERS = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p99_ms": "p99",
    "p999_ms": "p999",
    "max_ms": "max",
    "slow_pct": "slow %",
    "pct_of_slow": "% of slow",
    "explained_pct": "explained %",
    "median_ms": "median",
    "latency_ms": "latency",
}


def header(name: str) -> str:
    if name in HEADERS:
        return HEADERS[name]
    if name.endswith("_ms"):
        return name[:-3].replace("_", " ")
    if name.endswith("_pct"):
        return name[:-4].replace("_", " ") + " %"
    return name.replace("_", " ")


def table(frame: pl.DataFrame, *, bad: str | None = None, max_rows: int = 60) -> str:
    """An HTML table; rows where column `bad` is truthy are highlighted."""
    head = "".join(f"<th>{esc(header(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.head(max_rows).iter_rows(named=True):
        tds = []
        for name, v in row.items():
            text, num = cell(name, v)
            cls = "num" if num else ("chain" if name in ("chain", "note", "missing") else "")
            tds.append(f'<td class="{cls}">{esc(text)}</td>' if cls else f"<td>{esc(text)}</td>")
        flag = ' class="bad"' if bad and row.get(bad) else ""
        body.append(f"<tr{flag}>{''.join(tds)}</tr>")
    more = f'<p class="note">{max_rows} of {frame.height} rows shown.</p>' if frame.height > max_rows else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def missing(m: Missing) -> str:
    return f'<p class="missing">Not shown: {esc(m.reason)}.</p>'


def img(chart: Chart) -> str:
    return f'<img class="chart" data-chart="{esc(chart.name)}" alt="{esc(chart.alt)}" src="{chart.data_uri}">'


def bullets(items: Iterable[str]) -> str:
    lis = "".join(f"<li>{i}</li>" for i in items)
    return f'<ul class="key">{lis}</ul>' if lis else ""


def page(title: str, subtitle: str, body: Iterable[str], footer: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f'<h1>{esc(title)}</h1><p class="sub">{subtitle}</p>'
        + "".join(body)
        + f"<footer>{footer}</footer><script>{CHECK_SCRIPT}</script></body></html>\n"
    )
