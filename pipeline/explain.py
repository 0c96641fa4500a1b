"""``kforensics explain``: one request's evidence as a text timeline.

In the spirit of the figures an analyst draws by hand: the request bar from arrival to the
response's last byte, the request ahead of it on its connection, each thread's writes to the
partition, the handler's monitor wait, the blocker's slow write and the journal commit under
it — every bar with its start and duration, on one time axis (the capture's clock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from pipeline.errors import UsageError

WIDTH = 56


@dataclass
class Bar:
    label: str
    start: dt.datetime
    end: dt.datetime
    fill: str
    note: str = ""
    tid: int | None = None


def find_requests(con: duckdb.DuckDBPyConnection, request: str, topic: str | None, partition: int | None) -> list[int]:
    """pp_ids matching REQUEST: a correlation id, CONN_ID/CORRELATION_ID, or #PP_ID."""
    if request.startswith("#") and request[1:].isdigit():
        where, params = "pp_id = ?", [int(request[1:])]
    elif "/" in request and request.rsplit("/", 1)[1].lstrip("-").isdigit():
        conn, corr = request.rsplit("/", 1)
        where, params = "conn_id = ? and correlation_id = ?", [conn, int(corr)]
    elif request.lstrip("-").isdigit():
        where, params = "correlation_id = ?", [int(request)]
    else:
        raise UsageError(f"REQUEST must be a correlation id, CONN_ID/CORRELATION_ID or #PP_ID, got {request!r}")
    if topic is not None:
        where += " and topic = ?"
        params.append(topic)
    if partition is not None:
        where += " and partition = ?"
        params.append(partition)
    rows = con.execute(f"select pp_id from attribution where {where} order by arrival_at, pp_id", params).fetchall()
    return [r[0] for r in rows]


def _fmt_t(t: dt.datetime | None) -> str:
    return t.strftime("%H:%M:%S.%f") if t else "?"


def _ms(a: dt.datetime, b: dt.datetime) -> float:
    return (b - a).total_seconds() * 1000


def _row(con, sql: str, params: list) -> dict | None:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    r = cur.fetchone()
    return dict(zip(names, r, strict=True)) if r else None


def _rows(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def gather(con: duckdb.DuckDBPyConnection, pp_id: int) -> tuple[dict, list[Bar]]:
    a = _row(con, "select * from attribution where pp_id = ?", [pp_id])
    if a is None:
        raise UsageError(f"no produce request #{pp_id}")
    end = a["end_at"] or a["arrival_at"]
    bars = [Bar("request", a["arrival_at"], end, "=", f"{a['topic']}-{a['partition']}")]
    focus = [a]
    if a["cause"] == "head_of_line" and a["pred_correlation_id"] is not None:
        pred = _rows(
            con,
            "select * from attribution where conn_id = ? and correlation_id = ? order by latency_ms desc limit 1",
            [a["conn_id"], a["pred_correlation_id"]],
        )
        for p in pred:
            bars.append(
                Bar(
                    f"request ahead ({p['correlation_id']})",
                    p["arrival_at"],
                    p["end_at"],
                    "-",
                    f"{p['topic']}-{p['partition']}",
                )
            )
    if a["root_pp_id"] is not None and a["root_pp_id"] != pp_id:
        r = _row(con, "select * from attribution where pp_id = ?", [a["root_pp_id"]])
        if r is not None:
            if a["cause"] != "head_of_line" or r["correlation_id"] != a["pred_correlation_id"]:
                bars.append(
                    Bar(
                        f"root request ({r['correlation_id']})",
                        r["arrival_at"],
                        r["end_at"],
                        "-",
                        f"{r['topic']}-{r['partition']}",
                    )
                )
            focus.append(r)
    t0 = min(b.start for b in bars)
    t1 = max(b.end for b in bars if b.end)
    parts = {(f["topic"], f["partition"]) for f in focus}
    margin = dt.timedelta(milliseconds=max(_ms(t0, t1) * 0.05, 1.0))
    lo, hi = t0 - margin, t1 + margin
    tids = {f["handler_tid"] for f in focus} | {f["blocker_tid"] for f in focus}
    tids.discard(None)
    for tp in sorted(parts):
        for w in _rows(
            con,
            "select * from writes where topic = ? and partition = ? and end_at >= ? and start_at <= ? order by start_at limit 12",
            [tp[0], tp[1], lo, hi],
        ):
            role = ""
            if any(w["write_id"] == f["write_id"] for f in focus):
                role = " (own)" if w["write_id"] == a["write_id"] else " (root request's)"
            elif w["tid"] in {f["blocker_tid"] for f in focus}:
                role = " (blocker)"
            bars.append(
                Bar(
                    f"TID {w['tid']} write{role}",
                    w["start_at"],
                    w["end_at"],
                    "#" if w["latency_ms"] >= 1 else "=",
                    f"{w['topic']}-{w['partition']} @{w['file_offset']} {w['bytes']} B",
                    w["tid"],
                )
            )
    if tids:
        marks = ", ".join("?" for _ in tids)
        for w in _rows(
            con,
            f"select * from waits where tid in ({marks}) and end_at >= ? and start_at <= ? order by start_at limit 12",
            [*sorted(tids), lo, hi],
        ):
            bars.append(
                Bar(f"TID {w['tid']} monitor wait", w["start_at"], w["end_at"], "~", w["monitor_class"] or "", w["tid"])
            )
    for j in _rows(
        con,
        "select * from journal where end_at >= ? and start_at <= ? and (kind = 'commit' or latency_ms >= 1) order by start_at limit 8",
        [lo, hi],
    ):
        bars.append(
            Bar(
                "journal commit" if j["kind"] == "commit" else "ext4_dirty_inode",
                j["start_at"],
                j["end_at"],
                "%",
                j["func"],
            )
        )
    return a, bars


def render(a: dict, bars: list[Bar], slo_ms: float | None = None, names: dict[int, str] | None = None) -> str:
    t0 = min(b.start for b in bars)
    t1 = max(b.end for b in bars)
    span = max(_ms(t0, t1), 0.001)
    label_w = max(len(b.label) for b in bars) + 2

    def col(t: dt.datetime) -> int:
        return min(WIDTH - 1, max(0, round(_ms(t0, t) / span * (WIDTH - 1))))

    lines = []
    slow = "SLOW" if a["slow"] else ("not slow" if a["slow"] is not None else "latency unknown")
    lat = f"{a['latency_ms']:.1f} ms" if a["latency_ms"] is not None else "no response captured"
    lines.append(
        f"request {a['correlation_id']} on {a['conn_id']}  {a['topic']}-{a['partition']}  acks={a['acks']}  "
        f"{lat}" + (f" (SLO {slo_ms:g} ms)" if slo_ms else "") + f"  {slow}"
    )
    if a["slow"]:
        lines.append(f"cause: {a['cause']}   root cause: {a['root_cause']}   write link: {a['link_method'] or 'none'}")
        lines.append(f"chain: {a['chain']}")
    if a["missing"]:
        lines.append(f"missing evidence: {', '.join(a['missing'])}")
    lines.append("")
    axis = [" "] * WIDTH
    head = f"{'':{label_w}}{_fmt_t(t0)[:-3]}"
    tail = _fmt_t(t1)[-10:-3]
    lines.append(head + " " * max(1, label_w + WIDTH - len(head) - len(tail)) + tail)
    axis = "".join("+" if i % 11 == 0 else "-" for i in range(WIDTH))
    lines.append(f"{'':{label_w}}{axis}")
    for b in bars:
        s, e = col(b.start), col(b.end)
        row = [" "] * WIDTH
        if e <= s:
            row[s] = "|"
        else:
            for i in range(s, e + 1):
                row[i] = b.fill
            row[s], row[e] = "[", "]"
        dur = _ms(b.start, b.end)
        lines.append(f"{b.label:<{label_w}}{''.join(row)}  {_fmt_t(b.start)}  {dur:8.1f} ms  {b.note}".rstrip())
    tids = sorted({b.tid for b in bars if b.tid is not None})
    if names and tids:
        lines.append("")
        lines.append("threads: " + ", ".join(f"{t} = {names[t]}" for t in tids if t in names))
    return "\n".join(lines)


def explain(con: duckdb.DuckDBPyConnection, pp_id: int) -> str:
    a, bars = gather(con, pp_id)
    slo = con.execute("select slo_ms from settings").fetchone()[0]
    tids = sorted({b.tid for b in bars if b.tid is not None})
    names = {}
    if tids:
        marks = ", ".join("?" for _ in tids)
        names = dict(con.execute(f"select tid, name from threads where tid in ({marks})", tids).fetchall())
    return render(a, bars, slo, names)
