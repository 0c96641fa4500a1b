"""``compare``: incidents from differently configured brokers, side by side.

The first incident is the baseline. Every incident is judged by the same SLO (the
baseline's, or ``--slo-ms``), so "SLO violations" means the same thing in every column.
Relative changes are given for the count of slow requests (what the seed reports: "the
number of produce requests exceeding 65 ms was lowered by 82%") and for their rate per
request, which stays fair when the incidents saw different traffic.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipeline import __version__
from pipeline.report import charts
from pipeline.report import html as h
from pipeline.report.data import PCT_COLS, Incident, Missing
from pipeline.report.report import open_incident

COMPARE_NAME = "compare.html"


@dataclass
class Comparison:
    html: str
    side: pl.DataFrame  # one row per configuration
    causes: pl.DataFrame  # label, cause, root_cause, requests, pct_of_slow
    headlines: list[str]
    charts: list[charts.Chart]
    slo_ms: float
    seconds: float


def _change(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old == 0:
        return None
    return 100.0 * (new - old) / old


def change_text(pct: float | None, noun: str) -> str:
    if pct is None:
        return f"{noun}: no baseline to compare with"
    if abs(pct) < 0.05:
        return f"as many {noun}"
    return f"{abs(pct):.0f}% {'fewer' if pct < 0 else 'more'} {noun}"


def build_comparison(incs: list[Incident], slo_ms: float) -> Comparison:
    started = time.perf_counter()
    rows = []
    cause_frames = []
    dists = []
    heats = []
    notes: list[str] = []
    for inc in incs:
        inc.slo_override = slo_ms
        pct = inc.percentiles()
        disk = inc.disk_summary()
        row: dict = {"label": inc.label}
        if isinstance(pct, Missing):
            notes.append(f"{inc.label}: {pct.reason}")
            row.update({"requests": None, **dict.fromkeys(PCT_COLS), "slow": None, "slow_pct": None})
        else:
            overall = pct[0].row(0, named=True)
            row.update({k: overall[k] for k in ("requests", *PCT_COLS, "slow", "slow_pct")})
        causes = inc.causes()
        if isinstance(causes, Missing):
            row["journal_commit_pct"] = None
            row["top_cause"] = None
            if not isinstance(pct, Missing) and row["slow"]:
                notes.append(f"{inc.label}: causes not shown: {causes.reason}")
        else:
            cause_frames.append(causes.select("cause", "root_cause", "requests").with_columns(label=pl.lit(inc.label)))
            total = causes["requests"].sum()
            journal = causes.filter(pl.col("root_cause") == "journal_commit")["requests"].sum()
            row["journal_commit_pct"] = 100.0 * journal / total if total else None
            by = (
                causes.group_by("cause")
                .agg(pl.col("requests").sum())
                .sort(["requests", "cause"], descending=[True, False])
            )
            row["top_cause"] = by["cause"][0]
        if isinstance(disk, Missing):
            row["max_write_ms"] = row["max_commit_ms"] = None
        else:
            w = disk.filter(pl.col("what") == "fs write")
            c = disk.filter(pl.col("what").str.contains("commit"))
            row["max_write_ms"] = w["max_ms"].max() if w.height else None
            row["max_commit_ms"] = c["max_ms"].max() if c.height else None
        rows.append(row)
        dist = inc.distribution()
        if not isinstance(dist, Missing) and dist.height:
            dists.append((inc.label, dist))
        win = inc.window()
        if not isinstance(win, Missing):
            cells = inc.heatmap()
            if not isinstance(cells, Missing) and cells.height:
                heats.append((inc.label, cells, win))

    side = pl.DataFrame(
        rows,
        schema={
            "label": pl.Utf8,
            "requests": pl.Int64,
            **dict.fromkeys(PCT_COLS, pl.Float64),
            "slow": pl.Int64,
            "slow_pct": pl.Float64,
            "journal_commit_pct": pl.Float64,
            "top_cause": pl.Utf8,
            "max_write_ms": pl.Float64,
            "max_commit_ms": pl.Float64,
        },
    )
    base = side.row(0, named=True)

    def _change_col(col: str) -> list[float | None]:
        return [None if i == 0 else _change(r[col], base[col]) for i, r in enumerate(side.iter_rows(named=True))]

    side = side.with_columns(
        pl.Series("slow_change_pct", _change_col("slow"), pl.Float64),
        pl.Series("slow_rate_change_pct", _change_col("slow_pct"), pl.Float64),
        pl.Series("p999_change_pct", _change_col("p999_ms"), pl.Float64),
    )
    causes_long = (
        pl.concat(cause_frames)
        .with_columns((100.0 * pl.col("requests") / pl.col("requests").sum().over("label")).alias("pct_of_slow"))
        .select("label", "cause", "root_cause", "requests", "pct_of_slow")
        if cause_frames
        else pl.DataFrame(
            schema={
                "label": pl.Utf8,
                "cause": pl.Utf8,
                "root_cause": pl.Utf8,
                "requests": pl.Int64,
                "pct_of_slow": pl.Float64,
            }
        )
    )

    heads = []
    for r in side.slice(1).iter_rows(named=True):
        if r["slow"] is None or base["slow"] is None:
            continue
        tail = (
            f"p999 {h.fmt_ms(base['p999_ms'])} → {h.fmt_ms(r['p999_ms'])}, max {h.fmt_ms(base['max_ms'])} → "
            f"{h.fmt_ms(r['max_ms'])}"
        )
        traffic = _change(r["requests"], base["requests"])
        if traffic is not None and abs(traffic) > 10:
            # Different traffic: the rate per request is the fair measure; say so.
            rate = r["slow_rate_change_pct"]
            what = (
                f"share of requests over the {slo_ms:g} ms SLO: no baseline to compare with"
                if rate is None
                else f"{abs(rate):.0f}% {'lower' if rate < 0 else 'higher'} share of requests over the {slo_ms:g} ms SLO"
            )
            heads.append(
                f"<b>{h.esc(r['label'])}</b>: {h.esc(what)} than {h.esc(base['label'])} "
                f"({h.fmt_pct(base['slow_pct'])} → {h.fmt_pct(r['slow_pct'])} of requests; {base['slow']:,} → "
                f"{r['slow']:,} slow of {base['requests']:,} → {r['requests']:,} requests); {tail}"
            )
        else:
            what = change_text(r["slow_change_pct"], f"requests over the {slo_ms:g} ms SLO")
            heads.append(
                f"<b>{h.esc(r['label'])}</b>: {h.esc(what)} than {h.esc(base['label'])} ({base['slow']:,} → "
                f"{r['slow']:,}; {h.fmt_pct(base['slow_pct'])} → {h.fmt_pct(r['slow_pct'])} of requests); {tail}"
            )
    for r in side.iter_rows(named=True):
        if r["journal_commit_pct"]:
            heads.append(
                h.esc(f"{r['label']}: {r['journal_commit_pct']:.0f}% of slow requests waited on a journal commit")
            )
    made: list[charts.Chart] = []
    body = ["<h2>What changed</h2>" + (h.bullets(heads) or '<p class="missing">Nothing to compare: no requests.</p>')]
    if notes:
        body.append("".join(h.missing(Missing(n)) for n in notes))

    best = side.filter(pl.col("slow").is_not_null()).sort(["slow_pct", "label"]).head(1)
    title_best = (
        f"Fewest SLO violations: {best['label'][0]} ({h.fmt_pct(best['slow_pct'][0])} of requests)"
        if best.height
        else "SLO violations"
    )
    body.append(
        f"<h2>{h.esc(title_best)}</h2><p>Produce request latency per configuration; changes are relative to "
        f"<b>{h.esc(base['label'])}</b>. SLO {slo_ms:g} ms for every configuration.</p>"
        + h.table(
            side.select(
                "label",
                "requests",
                *PCT_COLS,
                "slow",
                "slow_pct",
                "slow_change_pct",
                "slow_rate_change_pct",
                "p999_change_pct",
            )
        )
    )
    if dists:
        chart = charts.distributions(dists, slo_ms)
        made.append(chart)
        body.append(
            "<h2>Latency distributions</h2><p>Left: share of requests at or below a latency. Right: share at "
            "or above it, on a log scale, where the tail shows.</p>" + h.img(chart)
        )
    else:
        body.append("<h2>Latency distributions</h2>" + h.missing(Missing("no configuration has request latencies")))
    if heats:
        chart = charts.heatmaps(heats, slo_ms)
        made.append(chart)
        body.append(
            "<h2>Latency over time, per configuration</h2><p>Same colour scale and latency buckets in every "
            "panel; time counts from each incident's start.</p>" + h.img(chart)
        )
    else:
        body.append("<h2>Latency over time</h2>" + h.missing(Missing("no configuration has request latencies")))
    if causes_long.height:
        chart = charts.cause_bars(
            causes_long.group_by("label", "cause", maintain_order=True).agg(pl.col("requests").sum())
        )
        made.append(chart)
        pivot = (
            causes_long.group_by("label", "cause")
            .agg(pl.col("requests").sum())
            .pivot(on="label", index="cause", values="requests")
            .fill_null(0)
        )
        labels = [c for c in side["label"].to_list() if c in pivot.columns]
        pivot = pivot.select("cause", *labels).sort(labels[0] if labels else "cause", descending=True)
        body.append("<h2>Causes per configuration</h2>" + h.img(chart) + h.table(pivot))
    else:
        body.append(
            "<h2>Causes per configuration</h2>" + h.missing(Missing("no configuration has attributed slow requests"))
        )
    body.append(
        "<h2>Disk per configuration</h2>"
        + h.table(side.select("label", "max_write_ms", "max_commit_ms", "journal_commit_pct", "top_cause"))
    )
    inputs = []
    for inc in incs:
        win = inc.window()
        src = inc.request_source()
        inputs.append(
            {
                "label": inc.label,
                "database": str(inc.path or ""),
                "from (UTC)": None if isinstance(win, Missing) else h.fmt_time(win.start, True),
                "to (UTC)": None if isinstance(win, Missing) else h.fmt_time(win.end, True),
                "requests from": src.reason if isinstance(src, Missing) else src[1],
            }
        )
    body.append("<h2>Inputs</h2>" + h.table(pl.DataFrame(inputs)))
    title = "Produce latency: " + " vs ".join(side["label"].to_list())
    footer = h.esc(f"kforensics {__version__} · generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC")
    page = h.page(title, h.esc(f"{len(incs)} configurations · SLO {slo_ms:g} ms"), body, footer)
    return Comparison(page, side, causes_long, heads, made, slo_ms, time.perf_counter() - started)


def compare_outdirs(
    outdirs: list[Path], labels: list[str], dest: Path, slo_ms: float | None = None
) -> tuple[Path, Comparison]:
    cons: list[duckdb.DuckDBPyConnection] = []
    incs: list[Incident] = []
    try:
        for outdir, label in zip(outdirs, labels, strict=True):
            con, inc = open_incident(outdir, label)
            cons.append(con)
            incs.append(inc)
        slo = slo_ms if slo_ms is not None else incs[0].slo_ms
        comp = build_comparison(incs, slo)
    finally:
        for con in cons:
            con.close()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / COMPARE_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(comp.html, encoding="utf-8")
    os.replace(tmp, path)
    return path, comp
