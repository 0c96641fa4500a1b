"""``OUTDIR/report.html``: one incident, readable top to bottom without help.

Sections: the conclusions first, then the bundle (artifacts, window, clock offsets),
latency percentiles overall and per topic, SLO violations, causes, the latency heatmap,
write and journal-commit latency over time, timelines of the worst requests with their
evidence chains, and the top blockers. A section whose data is absent says why.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pipeline import __version__
from pipeline.report import charts
from pipeline.report import html as h
from pipeline.report.data import CAUSE_TEXT, Incident, Missing
from pipeline.store import DB_NAME

REPORT_NAME = "report.html"


@dataclass
class Report:
    """The rendered page plus what the terminal summary and tests need."""

    html: str
    charts: list[charts.Chart]
    headlines: list[str]
    percentiles: pl.DataFrame | Missing
    causes: pl.DataFrame | Missing
    cause_counts: pl.DataFrame | Missing
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0


def open_incident(outdir: Path, label: str = "") -> tuple[duckdb.DuckDBPyConnection, Incident]:
    from pipeline.errors import ForensicsError

    path = Path(outdir) / DB_NAME
    if not path.exists():
        raise ForensicsError(f"no {DB_NAME} in {outdir}: run `kforensics run BUNDLE -o {outdir}` first")
    con = duckdb.connect(str(path), read_only=True)
    return con, Incident(con, label or Path(outdir).name, path=Path(outdir))


def cause_headline(causes: pl.DataFrame) -> str:
    total = int(causes["requests"].sum())
    journal = int(causes.filter(pl.col("root_cause") == "journal_commit")["requests"].sum())
    if journal and journal * 2 >= total:
        return f"{100 * journal / total:.0f}% of slow requests waited on a journal commit"
    by_cause = causes.group_by("cause").agg(pl.col("requests").sum()).sort("requests", descending=True)
    top, n = by_cause.row(0)
    text = f"{100 * n / total:.0f}% of slow requests {CAUSE_TEXT.get(top, f'have cause {top}')}"
    if journal:
        text += f"; {100 * journal / total:.0f}% waited on a journal commit"
    return text


def build_report(inc: Incident, *, max_timelines: int = 3) -> Report:
    started = time.perf_counter()
    slo = inc.slo_ms
    body: list[str] = []
    made: list[charts.Chart] = []
    heads: list[str] = []
    gaps: list[str] = []

    def miss(m: Missing, what: str) -> str:
        gaps.append(f"{what}: {m.reason}")
        return h.missing(m)

    window = inc.window()
    settings = inc.settings()
    broker = inc.broker()
    title = "Kafka produce latency" + (f" — {broker}" if broker else "")
    if isinstance(window, Missing):
        subtitle = h.esc(f"No time window: {window.reason}.")
    else:
        subtitle = h.esc(
            f"{h.fmt_time(window.start, True)} to {h.fmt_time(window.end, True)} UTC "
            f"({window.seconds:,.1f} s) · SLO {slo:g} ms ({inc.slo_source})"
        )
        if settings.get("description"):
            subtitle += " · " + h.esc(settings["description"])

    # -- percentiles and SLO --------------------------------------------------------------
    pct = inc.percentiles()
    pct_frame: pl.DataFrame | Missing
    if isinstance(pct, Missing):
        pct_frame = pct
        sec_latency = f"<h2>Produce latency</h2>{miss(pct, 'latency')}"
        sec_slo = f"<h2>SLO violations</h2>{miss(pct, 'SLO violations')}"
    else:
        pct_frame, source = pct
        overall = pct_frame.row(0, named=True)
        heads.append(
            f"<b>{overall['slow']:,}</b> of {overall['requests']:,} produce requests "
            f"({h.fmt_pct(overall['slow_pct'])}) took {slo:g} ms or more; "
            f"p99 {h.fmt_ms(overall['p99_ms'])}, p999 {h.fmt_ms(overall['p999_ms'])}, max {h.fmt_ms(overall['max_ms'])} "
            f"(median {h.fmt_ms(overall['p50_ms'])})"
        )
        sec_latency = (
            f"<h2>Latency: median {h.esc(h.fmt_ms(overall['p50_ms']))}, "
            f"p999 {h.esc(h.fmt_ms(overall['p999_ms']))}, max {h.esc(h.fmt_ms(overall['max_ms']))}</h2>"
            f'<p class="note">Per produce request (a request touching several partitions counts once overall, '
            f"once per topic). Source: {h.esc(source)}.</p>"
            + (
                f'<p class="note">{unanswered:,} request partitions had no response in the capture and are '
                "not counted.</p>"
                if (unanswered := inc.unanswered())
                else ""
            )
            + h.table(pct_frame.drop("slow", "slow_pct"))
        )
        topics = pct_frame.slice(1).filter(pl.col("slow") > 0)
        worst_topic = f" {h.esc(topics['scope'][0])} had the most ({topics['slow'][0]:,})." if topics.height else ""
        sec_slo = (
            f"<h2>{overall['slow']:,} requests ({h.esc(h.fmt_pct(overall['slow_pct']))}) violated the "
            f"{slo:g} ms SLO</h2><p>Requests whose latency (last request byte to last response byte) reached "
            f"{slo:g} ms.{worst_topic}</p>"
            + h.table(pct_frame.select("scope", "requests", "slow", "slow_pct", "max_ms"), bad="slow")
        )

    # -- causes ---------------------------------------------------------------------------
    causes = inc.causes()
    if isinstance(causes, Missing):
        sec_causes = f"<h2>Causes</h2>{miss(causes, 'causes')}"
    else:
        line = cause_headline(causes)
        heads.append(h.esc(line))
        chart = charts.causes(causes)
        made.append(chart)
        by_topic = ""
        counts = inc.cause_counts()
        if not isinstance(counts, Missing) and counts.filter(pl.col("scope") != "all topics").height:
            wide = (
                counts.filter(pl.col("scope") != "all topics")
                .pivot(on="cause", index="scope", values="requests", sort_columns=True)
                .fill_null(0)
                .rename({"scope": "topic"})
            )
            wide = wide.with_columns(pl.sum_horizontal(pl.exclude("topic")).alias("slow")).sort(
                ["slow", "topic"], descending=[True, False]
            )
            by_topic = "<h3>Slow requests by topic and cause</h3>" + h.table(
                wide.select("topic", "slow", pl.exclude("topic", "slow"))
            )
        sec_causes = (
            f"<h2>{h.esc(line)}</h2><p>Each slow request has one immediate cause and the deepest cause "
            "proven behind it (root cause). <i>explained %</i> is the share of their latency the evidence "
            "accounts for.</p>" + h.img(chart) + h.table(causes) + by_topic
        )

    # -- heatmap --------------------------------------------------------------------------
    if isinstance(window, Missing):
        sec_heat = f"<h2>Latency over time</h2>{miss(window, 'heatmap')}"
    else:
        cells = inc.heatmap()
        if isinstance(cells, Missing) or cells.height == 0:
            m = cells if isinstance(cells, Missing) else Missing("no request latencies")
            sec_heat = f"<h2>Latency over time</h2>{miss(m, 'heatmap')}"
        else:
            chart = charts.heatmap(cells, window, slo)
            made.append(chart)
            sec_heat = (
                "<h2>Latency over time: where the slow requests cluster</h2>"
                "<p>Each column is a time bin, each row a latency bucket (log scale); colour is the number of "
                "requests. Vertical streaks above the dashed SLO line are stalls that held many requests at once.</p>"
                + h.img(chart)
            )

    # -- disk -----------------------------------------------------------------------------
    series = inc.disk_series() if not isinstance(window, Missing) else {"writes": window, "commits": window}
    writes, commits = series["writes"], series["commits"]
    disk_parts = []
    for what, v in (("write latency", writes), ("journal commits", commits)):
        if isinstance(v, Missing):
            disk_parts.append(miss(Missing(f"{what}: {v.reason}"), "disk"))
    summary = inc.disk_summary()
    if not isinstance(window, Missing) and not (isinstance(writes, Missing) and isinstance(commits, Missing)):
        chart = charts.disk(
            None if isinstance(writes, Missing) else writes,
            None if isinstance(commits, Missing) else commits,
            window,
            slo,
        )
        made.append(chart)
        disk_parts.insert(0, h.img(chart))
    disk_title = "Disk: write and journal-commit latency"
    if not isinstance(summary, Missing):
        top = summary.row(0, named=True)
        disk_title = f"Disk: {top['what']} took up to {h.fmt_ms(top['max_ms'])}"
        heads.append(h.esc(f"Slowest traced call: {top['what']}, {h.fmt_ms(top['max_ms'])}"))
        disk_parts.append(h.table(summary))
    sec_disk = f"<h2>{h.esc(disk_title)}</h2>" + "".join(disk_parts)

    # -- timelines --------------------------------------------------------------------------
    eps = inc.episodes(max_timelines)
    if isinstance(eps, Missing):
        sec_tl = f"<h2>Worst requests</h2>{miss(eps, 'timelines')}"
    else:
        parts = [
            "<p>The worst requests from distinct stalls, with everything on the same partition around them: "
            "other requests (colour = cause), writes per thread (red = slower than the SLO), monitor waits, "
            "and journal commits. ▶ marks the request the chart is about.</p>"
        ]
        for i, focus in enumerate(eps, 1):
            chart = charts.gantt(inc.timeline(focus), focus, f"timeline-{i}", slo)
            made.append(chart)
            chain = focus.get("chain")
            cause = focus.get("cause")
            parts.append(
                f"<h3>{i}. {h.esc(focus['topic'])}-{focus['partition']} at {h.fmt_time(focus['arrival_at'])}: "
                f"{h.esc(h.fmt_ms(focus['latency_ms']))}"
                + (f", {h.esc(cause)}" if cause else "")
                + "</h3>"
                + (f"<p>Evidence: {h.esc(chain)}</p>" if chain else "")
                + (
                    f'<p class="note">Missing evidence: {h.esc(h.cell("missing", focus["missing"])[0])}</p>'
                    if focus.get("missing")
                    else ""
                )
                + h.img(chart)
            )
        worst = inc.worst(20)
        if not isinstance(worst, Missing):
            keep = [
                c
                for c in (
                    "arrival_at",
                    "latency_ms",
                    "topic",
                    "partition",
                    "correlation_id",
                    "cause",
                    "root_cause",
                    "chain",
                    "missing",
                )
                if c in worst.columns
            ]
            parts.append(
                f"<h3>The {worst.height} slowest requests and their evidence chains</h3>" + h.table(worst.select(keep))
            )
        first = eps[0]
        sec_tl = (
            f"<h2>Worst request: {h.esc(h.fmt_ms(first['latency_ms']))} on {h.esc(first['topic'])}-"
            f"{first['partition']} at {h.fmt_time(first['arrival_at'])}</h2>" + "".join(parts)
        )

    # -- blockers ---------------------------------------------------------------------------
    bl = inc.blockers()
    parts = []
    bl_title = "Top blockers"
    for key, heading in (
        ("threads", "Threads that held up slow requests"),
        ("partitions", "Partitions with the most slow requests"),
        ("segments", "Segments with the most slow writes"),
    ):
        v = bl[key]
        parts.append(f"<h3>{heading}</h3>" + (miss(v, heading) if isinstance(v, Missing) else h.table(v)))
    threads = bl["threads"]
    if not isinstance(threads, Missing):
        t = threads.row(0, named=True)
        who = f"tid {t['tid']}" + (f" ({t['thread']})" if t["thread"] else "")
        bl_title = f"Top blocker: {who}, behind {t['slow_requests']:,} slow requests"
    sec_bl = f"<h2>{h.esc(bl_title)}</h2>" + "".join(parts)

    # -- bundle -----------------------------------------------------------------------------
    arts = inc.artifacts()
    offsets = inc.clock_offsets()
    bundle_parts = []
    if isinstance(arts, Missing):
        bundle_parts.append(miss(arts, "artifacts"))
        bundle_title = "Bundle"
    else:
        not_ok = arts.filter(pl.col("status").is_in(["partial", "failed"]))
        errors = int(arts["errors"].fill_null(0).sum()) if "errors" in arts.columns else 0
        bundle_title = f"Bundle: {arts.height} artifacts, {errors:,} read errors"
        if not_ok.height:
            bundle_title += f", {not_ok.height} partial or failed"
            heads.append(
                h.esc(f"{not_ok.height} artifact(s) were read only in part: {', '.join(not_ok['path'].to_list()[:5])}")
            )
        kinds = set(arts["kind"].to_list())
        absent = [k for k in ("pcap|pcapng", "ebpf", "jfr", "threaddump", "segment") if not set(k.split("|")) & kinds]
        if absent:
            bundle_parts.append(
                f'<p class="note">No artifact of kind: {h.esc(", ".join(absent))} — sections that need them say so.</p>'
            )
        bundle_parts.append(h.table(arts, bad="errors"))
    bundle_parts.append("<h3>Clock offsets used</h3>")
    bundle_parts.append(miss(offsets, "clock offsets") if isinstance(offsets, Missing) else h.table(offsets))
    if inc.has("stage_runs") and inc.rows("stage_runs"):
        bundle_parts.append(
            "<h3>Correlation stages run</h3>" + h.table(inc.frame("select * from stage_runs"), max_rows=40)
        )
    if settings:
        bundle_parts.append(
            "<h3>Settings</h3>"
            + h.table(pl.DataFrame({"setting": list(settings), "value": [str(v) for v in settings.values()]}))
        )
    sec_bundle = f"<h2>{h.esc(bundle_title)}</h2>" + "".join(bundle_parts)

    sections = {
        "summary": "<h2>What happened</h2>"
        + (h.bullets(heads) or '<p class="missing">Nothing to conclude: no data.</p>'),
        "latency": sec_latency,
        "slo": sec_slo,
        "causes": sec_causes,
        "heatmap": sec_heat,
        "disk": sec_disk,
        "worst": sec_tl,
        "blockers": sec_bl,
        "bundle": sec_bundle,
    }
    body = [f'<section id="{key}">{html}</section>' for key, html in sections.items()]
    footer = h.esc(
        f"kforensics {__version__} · generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC · "
        f"query the same data with `kforensics query` on {DB_NAME}"
    )
    page = h.page(title, subtitle, body, footer)
    counts = inc.cause_counts()
    return Report(page, made, heads, pct_frame, causes, counts, gaps, time.perf_counter() - started)


def write_report(outdir: Path, con: duckdb.DuckDBPyConnection | None = None) -> tuple[Path, Report]:
    """Render OUTDIR/report.html (through `con` when the caller holds the database open)."""
    own = con is None
    if own:
        con, inc = open_incident(outdir)
    else:
        inc = Incident(con, Path(outdir).name)
    try:
        rep = build_report(inc)
    finally:
        if own:
            con.close()
    path = Path(outdir) / REPORT_NAME
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(rep.html, encoding="utf-8")
    os.replace(tmp, path)
    return path, rep


def summary_frame(rep: Report) -> pl.DataFrame:
    """Percentiles per scope with slow-request counts per cause, for csv/json output."""
    if isinstance(rep.percentiles, Missing):
        return pl.DataFrame({"scope": [], "note": []}, schema={"scope": pl.Utf8, "note": pl.Utf8})
    frame = rep.percentiles
    if not isinstance(rep.cause_counts, Missing) and rep.cause_counts.height:
        wide = (
            rep.cause_counts.sort("cause")
            .with_columns(("cause_" + pl.col("cause")).alias("cause"))
            .pivot(on="cause", index="scope", values="requests")
        )
        frame = frame.join(wide, on="scope", how="left", maintain_order="left")
        frame = frame.with_columns(pl.col(c).fill_null(0) for c in wide.columns if c != "scope")
    return frame
