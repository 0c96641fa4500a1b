"""Charts drawn with matplotlib (Agg) from aggregated frames, returned as embeddable PNG."""

from __future__ import annotations

import base64
import datetime as dt
import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from pipeline.report.data import HEAT_PER_DECADE, Window  # noqa: E402

CAUSE_COLOURS = {
    "slow_write": "#d62728",
    "monitor_wait": "#9467bd",
    "head_of_line": "#ff7f0e",
    "queue_wait": "#8c564b",
    "replication_wait": "#17becf",
    "unexplained": "#7f7f7f",
}
ROOT_HATCH = {"journal_commit": "", "slow_write": "//", "none": ".."}
SERIES = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
DPI = 96

plt.rcParams.update(
    {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.facecolor": "white",
    }
)


@dataclass(frozen=True)
class Chart:
    """One rendered chart: a stable name (for tests), its alt text and PNG bytes."""

    name: str
    alt: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def _render(fig: Figure, name: str, alt: str) -> Chart:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return Chart(name, alt, buf.getvalue())


def _ms_formatter(v: float, _pos: int) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    if v >= 1:
        return f"{v:g} ms"
    return f"{v * 1000:g} µs"


def _time_axis(ax, span_s: float) -> None:
    loc = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    fmt = "%H:%M:%S.%f" if span_s < 5 else "%H:%M:%S" if span_s < 6 * 3600 else "%m-%d %H:%M"
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _p: mdates.num2date(v).strftime(fmt)[: -3 if fmt.endswith("%f") else None])
    )
    ax.set_xlabel("time (UTC)")


def _bin_times(w: Window, tb: np.ndarray) -> list[dt.datetime]:
    return [w.start + dt.timedelta(seconds=float(b) * w.bin_s) for b in tb]


def heat_matrix(cells: pl.DataFrame, n_time: int, lb_range: tuple[int, int]) -> np.ndarray:
    lo, hi = lb_range
    grid = np.zeros((hi - lo + 1, n_time))
    tb = cells["tb"].to_numpy().astype(int).clip(0, n_time - 1)
    lb = cells["lb"].to_numpy().astype(int).clip(lo, hi) - lo
    np.add.at(grid, (lb, tb), cells["n"].to_numpy())
    return grid


def heatmap(cells: pl.DataFrame, w: Window, slo_ms: float, *, name: str = "heatmap", title: str = "") -> Chart:
    """Requests per time bin and log-scaled latency bucket, the SLO as a dashed line."""
    n_time = int(np.ceil(w.seconds / w.bin_s)) + 1
    lb_range = (int(cells["lb"].min()), int(cells["lb"].max()))
    fig, ax = plt.subplots(figsize=(11, 3.6))
    _draw_heat(ax, cells, w, n_time, lb_range, None)
    ax.axhline(slo_ms, color="#d62728", lw=1, ls="--")
    ax.text(w.start, slo_ms, f" SLO {slo_ms:g} ms", color="#d62728", va="bottom", fontsize=8)
    ax.set_title(title or f"Produce latency over time (requests per {w.bin_s:g} s bin and latency bucket)")
    _time_axis(ax, w.seconds)
    return _render(fig, name, f"Heatmap of produce request latency over time, log-scaled buckets, SLO {slo_ms:g} ms")


def _draw_heat(ax, cells, w: Window, n_time: int, lb_range, vmax, relative_time: bool = False):
    grid = heat_matrix(cells, n_time, lb_range)
    lo, hi = lb_range
    y_edges = 10 ** (np.arange(lo, hi + 2) / HEAT_PER_DECADE)
    if relative_time:
        x_edges = np.arange(n_time + 1) * w.bin_s
    else:
        x_edges = mdates.date2num(_bin_times(w, np.arange(n_time + 1)))
    masked = np.ma.masked_equal(grid, 0)
    mesh = ax.pcolormesh(
        x_edges, y_edges, masked, norm=LogNorm(vmin=1, vmax=vmax or max(grid.max(), 2)), cmap="viridis", shading="flat"
    )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(_ms_formatter))
    ax.set_ylabel("latency")
    ax.grid(False)
    if not relative_time:
        ax.xaxis_date()
    cb = ax.figure.colorbar(mesh, ax=ax, pad=0.01)
    cb.set_label("requests")
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    cb.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
    return mesh


def disk(writes: pl.DataFrame | None, commits: pl.DataFrame | None, w: Window, slo_ms: float) -> Chart:
    """Max write latency per bin, and journal-commit latency per bin, on one time axis."""
    panels = [p for p in (("writes", writes), ("commits", commits)) if p[1] is not None]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (kind, frame) in zip(axes[:, 0], panels, strict=True):
        if kind == "writes":
            t = mdates.date2num(_bin_times(w, frame["tb"].to_numpy()))
            ax.step(t, frame["max_ms"].to_numpy(), where="post", color=SERIES[0], lw=1)
            ax.axhline(slo_ms, color="#d62728", lw=1, ls="--", label=f"SLO {slo_ms:g} ms")
            ax.set_title(f"Max file-system write latency per {w.bin_s:g} s")
            ax.legend(loc="upper right", fontsize=8)
        else:
            for i, (func, part) in enumerate(frame.group_by("func", maintain_order=True)):
                t = mdates.date2num(_bin_times(w, part["tb"].to_numpy()))
                colour = SERIES[(i + 1) % len(SERIES)]
                ax.plot(t, part["max_ms"].to_numpy(), "o", ms=3.5, color=colour, label=func[0])
                ax.vlines(t, 0, part["max_ms"].to_numpy(), color=colour, lw=0.6, alpha=0.5)
            ax.set_title(f"Journal commit latency (max per {w.bin_s:g} s)")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_ms_formatter))
        ax.set_ylabel("latency")
        ax.set_xlim(mdates.date2num(w.start), mdates.date2num(w.end))
    _time_axis(axes[-1, 0], w.seconds)
    names = " and ".join(k for k, _ in panels)
    return _render(fig, "disk", f"Max latency over time of {names}")


def causes(frame: pl.DataFrame) -> Chart:
    """Slow requests per cause, split by root cause."""
    piv = frame.group_by("cause", "root_cause").agg(pl.col("requests").sum())
    order = piv.group_by("cause").agg(pl.col("requests").sum()).sort("requests")["cause"].to_list()
    roots = sorted(piv["root_cause"].unique().to_list(), key=lambda r: (r == "none", r))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(order) + 1.2))
    left = np.zeros(len(order))
    for root in roots:
        vals = np.array(
            [piv.filter((pl.col("cause") == c) & (pl.col("root_cause") == root))["requests"].sum() for c in order],
            dtype=float,
        )
        ax.barh(
            order,
            vals,
            left=left,
            color=[CAUSE_COLOURS.get(c, "#7f7f7f") for c in order],
            hatch=ROOT_HATCH.get(root, "xx"),
            edgecolor="white",
            label=f"root cause: {root}",
        )
        left += vals
    for y, total in enumerate(left):
        ax.text(total, y, f" {int(total):,}", va="center", fontsize=8)
    ax.set_xlabel("slow requests")
    ax.set_title("Slow requests by cause (hatching: root cause)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", visible=False)
    return _render(fig, "causes", "Bar chart of slow requests by cause and root cause")


def gantt(tl: dict[str, pl.DataFrame], focus: dict, name: str, slo_ms: float) -> Chart:
    """The seed's request timeline: requests, writes per thread, monitor waits, journal commits."""
    t0 = focus["arrival_at"]
    names = dict(zip(tl["names"]["tid"].to_list(), tl["names"]["name"].to_list(), strict=True))

    def ms(ts: pl.Series) -> np.ndarray:
        return (ts - t0).dt.total_microseconds().to_numpy() / 1000.0

    def tname(tid) -> str:
        n = names.get(tid)
        return f"tid {tid}" + (f" {_short_thread(n)}" if n else "")

    lo = (tl["bounds"]["lo"][0] - t0).total_seconds() * 1000
    hi = (tl["bounds"]["hi"][0] - t0).total_seconds() * 1000
    min_w = (hi - lo) * 0.003  # keep sub-millisecond bars visible

    def bars(part: pl.DataFrame) -> list[tuple[float, float]]:
        s, e = ms(part["start_at"]), ms(part["end_at"])
        return [(a, max(b - a, min_w)) for a, b in zip(s, e, strict=True)]

    Row = tuple[str, list[tuple[float, float]], list[str]]
    req_rows: list[Row] = []
    evidence: set[int] = set()
    req = tl.get("requests")
    if req is not None and req.height:
        s, e = ms(req["arrival_at"]), ms(req["end_at"])
        for i, r in enumerate(req.iter_rows(named=True)):
            me = r["conn_id"] == focus["conn_id"] and r["correlation_id"] == focus["correlation_id"]
            colour = CAUSE_COLOURS.get(r.get("cause") or "", "#d62728" if r["latency_ms"] >= slo_ms else "#9ecae1")
            label = f"{'▶ ' if me else ''}request {r['correlation_id']} ({r['latency_ms']:.0f} ms, {r.get('cause') or 'ok'})"
            req_rows.append((label, [(s[i], max(e[i] - s[i], min_w))], [colour]))
            if r.get("cause"):
                evidence |= {r.get(c) for c in ("write_tid", "blocker_tid", "handler_tid") if r.get(c) is not None}
    write_rows: list[Row] = []
    writes = tl.get("writes")
    keep = set(evidence)
    if writes is not None and writes.height:
        slow_tids = set(writes.filter(pl.col("latency_ms") >= slo_ms)["tid"].to_list())
        keep |= slow_tids
        mine = writes.filter(pl.col("tid").is_in(list(keep)))
        for (tid,), part in mine.group_by("tid", maintain_order=True):
            cols = ["#d62728" if x >= slo_ms else "#1f77b4" for x in part["latency_ms"].to_list()]
            write_rows.append((f"write {tname(tid)}", bars(part), cols))
        rest = writes.filter(~pl.col("tid").is_in(list(keep)))
        if rest.height:
            threads = rest["tid"].n_unique()
            write_rows.append((f"other writes ({threads} threads)", bars(rest), ["#1f77b4"] * rest.height))
    kern_rows: list[Row] = []
    commit_rows: list[Row] = []
    kern = tl.get("kernel")
    if kern is not None and kern.height:
        for (func, tid), part in kern.group_by("func", "tid", maintain_order=True):
            if "commit" in func:
                commit_rows.append((func, bars(part), ["#000000"] * part.height))
            elif tid in keep:
                kern_rows.append((f"{func} {tname(tid)}", bars(part), ["#8c564b"] * part.height))
    wait_rows: list[Row] = []
    waits = tl.get("waits")
    if waits is not None and waits.height:
        for (tid,), part in waits.group_by("tid", maintain_order=True):
            wait_rows.append((f"monitor wait {tname(tid)}", bars(part), ["#9467bd"] * part.height))
    kern_rows = kern_rows[:4]
    budget = 26 - len(req_rows) - len(kern_rows) - len(commit_rows)
    rows = (
        req_rows
        + write_rows[: max(budget // 2, 2)]
        + kern_rows
        + commit_rows
        + wait_rows[: max(budget - budget // 2, 2)]
    )
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.3))
    for y, (_label, bars, colours) in enumerate(rows):
        ax.broken_barh(bars, (len(rows) - 1 - y - 0.35, 0.7), facecolors=colours)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"ms after {t0.strftime('%H:%M:%S.%f')[:-3]} UTC")
    ax.set_title(
        f"{focus['topic']}-{focus['partition']}: request {focus['correlation_id']} took {focus['latency_ms']:.0f} ms"
    )
    return _render(fig, name, f"Timeline of request {focus['correlation_id']} with writes, waits and commits")


def _short_thread(name: str) -> str:
    return name.replace("data-plane-kafka-request-handler-", "handler-").replace("kafka-request-handler-", "handler-")


# -- compare --------------------------------------------------------------------------
def distributions(dists: list[tuple[str, pl.DataFrame]], slo_ms: float) -> Chart:
    """CDF and complementary CDF of request latency per configuration (frames: upper_ms, n)."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (label, d) in enumerate(dists):
        x = d["upper_ms"].to_numpy()
        c = np.cumsum(d["n"].to_numpy()) / max(d["n"].sum(), 1)
        colour = SERIES[i % len(SERIES)]
        a1.step(x, c, where="post", color=colour, label=label)
        tail = np.clip(1 - np.concatenate([[0.0], c[:-1]]), 1e-7, 1)
        a2.step(x, tail, where="post", color=colour, label=label)
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(_ms_formatter))
        ax.axvline(slo_ms, color="#d62728", lw=1, ls="--")
        ax.set_xlabel("produce latency")
    a1.set_ylabel("fraction of requests ≤ latency")
    a1.set_title("Latency CDF")
    a1.legend(fontsize=8, loc="lower right")
    a2.set_yscale("log")
    a2.set_ylabel("fraction of requests ≥ latency")
    a2.set_title(f"Tail (log scale): the dashed line is the {slo_ms:g} ms SLO")
    return _render(fig, "distributions", "Latency CDF and tail per configuration")


def heatmaps(items: list[tuple[str, pl.DataFrame, Window]], slo_ms: float) -> Chart:
    """One latency heatmap per configuration on a shared colour scale, time from each start."""
    lo = min(int(c["lb"].min()) for _, c, _ in items)
    hi = max(int(c["lb"].max()) for _, c, _ in items)
    vmax = max(float(c.group_by("tb", "lb").agg(pl.col("n").sum())["n"].max()) for _, c, _ in items)
    fig, axes = plt.subplots(
        len(items), 1, figsize=(11, 2.8 * len(items)), squeeze=False, sharey=True, layout="constrained"
    )
    for ax, (label, cells, w) in zip(axes[:, 0], items, strict=True):
        n_time = int(np.ceil(w.seconds / w.bin_s)) + 1
        _draw_heat(ax, cells, w, n_time, (lo, hi), vmax, relative_time=True)
        ax.axhline(slo_ms, color="#d62728", lw=1, ls="--")
        ax.set_title(f"{label}: from {w.start:%Y-%m-%d %H:%M:%S} UTC, {w.bin_s:g} s bins")
        ax.set_xlabel("seconds from the start of the incident")
    return _render(fig, "heatmaps", "Latency heatmap per configuration")


def cause_bars(frame: pl.DataFrame) -> Chart:
    """Slow requests per configuration, stacked by cause (frame: label, cause, requests)."""
    labels = list(dict.fromkeys(frame["label"].to_list()))
    causes_ = list(dict.fromkeys(frame.sort("requests", descending=True)["cause"].to_list()))
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(labels) + 1.4))
    left = np.zeros(len(labels))
    for cause in causes_:
        vals = np.array(
            [frame.filter((pl.col("label") == lab) & (pl.col("cause") == cause))["requests"].sum() for lab in labels],
            dtype=float,
        )
        ax.barh(labels, vals, left=left, color=CAUSE_COLOURS.get(cause, "#7f7f7f"), label=cause)
        left += vals
    for y, total in enumerate(left):
        ax.text(total, y, f" {int(total):,}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("slow requests")
    ax.set_title("Slow requests per configuration, by cause")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", visible=False)
    return _render(fig, "cause_bars", "Slow requests per configuration by cause")
