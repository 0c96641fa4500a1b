"""What the report shows, as small frames aggregated in DuckDB SQL.

Every query reads defensively: a table or column that is absent (the artifact kind was not
in the bundle, or a stage has not run) gives a :class:`Missing` with the reason in words,
and the report prints that reason instead of the section. Nothing here scans rows into
Python: percentiles, heatmap cells and per-bin maxima are computed by DuckDB, so an
incident with millions of requests still reports in seconds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipeline.manifest import DEFAULT_SLO_MS

QUANTILES = (0.5, 0.9, 0.99, 0.999)
PCT_COLS = ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")
CAUSES = ("slow_write", "monitor_wait", "head_of_line", "queue_wait", "replication_wait", "unexplained")
CAUSE_TEXT = {
    "slow_write": "waited on their own slow write to disk",
    "monitor_wait": "waited on a partition lock held by a thread whose write was slow",
    "head_of_line": "queued behind a slow request on the same connection",
    "queue_wait": "waited for a free request-handler thread",
    "replication_wait": "waited for followers to replicate (acks=all)",
    "unexplained": "have no evidence that explains them",
}
COMMIT_FUNCS = ("jbd2_journal_commit_transaction", "jbd2_fc_begin_commit", "xfs_log_force", "xlog_cil_push_work")
HEAT_PER_DECADE = 8  # latency buckets per power of ten
HEAT_MIN_MS = 0.1


@dataclass(frozen=True)
class Missing:
    """A section that cannot be drawn, and why, in words for the reader."""

    reason: str

    def __bool__(self) -> bool:
        return False


@dataclass
class Window:
    start: dt.datetime
    end: dt.datetime
    bin_s: float

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 1e-3)


def nice_bin_s(seconds: float, target_bins: int = 240) -> float:
    """A readable bin width (1-2-5 steps, in seconds) giving about target_bins bins."""
    raw = max(seconds / target_bins, 0.001)
    exp = math.floor(math.log10(raw))
    for step in (1, 2, 5, 10):
        width = step * 10**exp
        if width >= raw:
            return float(width)
    return float(10 ** (exp + 1))


@dataclass
class Incident:
    """One incident database, read-only, with the schema looked up once."""

    con: duckdb.DuckDBPyConnection
    label: str = ""
    slo_override: float | None = None  # compare judges every incident by one SLO
    path: Path | None = None
    columns: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = self.con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'main' order by table_name, ordinal_position"
        ).fetchall()
        for table, col in rows:
            self.columns.setdefault(table, []).append(col)
        self._settings: dict[str, Any] | None = None
        self._window: Window | Missing | None = None

    # -- schema ---------------------------------------------------------------------
    def has(self, table: str, *cols: str) -> bool:
        have = self.columns.get(table)
        return have is not None and all(c in have for c in cols)

    def lacks(self, table: str, *cols: str) -> str | None:
        """Why table.cols cannot be read, or None when they can."""
        have = self.columns.get(table)
        if have is None:
            return f"no {table} table"
        gone = [c for c in cols if c not in have]
        if gone:
            return f"{table} has no column {', '.join(gone)}"
        return None

    def rows(self, table: str, where: str = "true") -> int:
        if table not in self.columns:
            return 0
        return self.con.execute(f'select count(*) from "{table}" where {where}').fetchall()[0][0]

    def frame(self, sql: str, params: list | None = None) -> pl.DataFrame:
        return self.con.sql(sql, params=params).pl()

    def scalar(self, sql: str, params: list | None = None) -> Any:
        rows = self.con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    # -- settings -------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The correlation's settings: a key/value table or a one-row table of columns."""
        if self._settings is not None:
            return self._settings
        out: dict[str, Any] = {}
        cols = self.columns.get("settings")
        if cols:
            key = next((c for c in ("key", "name", "setting") if c in cols), None)
            if key and "value" in cols:
                for k, v in self.con.execute(f'select "{key}", value from settings').fetchall():
                    out[str(k)] = v
            else:
                first = next(iter(self.con.execute("select * from settings limit 1").fetchall()), None)
                if first:
                    out = dict(zip(cols, first, strict=True))
        self._settings = out
        return out

    @property
    def slo_ms(self) -> float:
        if self.slo_override is not None:
            return self.slo_override
        try:
            return float(self.settings().get("slo_ms", DEFAULT_SLO_MS))
        except (TypeError, ValueError):
            return DEFAULT_SLO_MS

    @property
    def slo_source(self) -> str:
        if self.slo_override is not None:
            return "given on the command line"
        if "slo_ms" in self.settings():
            return "from the correlation settings"
        return "default: the correlation settings do not give one"

    def broker(self) -> str | None:
        """The broker: its id from the settings, else the address most requests went to."""
        if self.settings().get("broker_id") is not None:
            return f"broker {self.settings()['broker_id']}"
        if self.has("kafka_requests", "broker_addr", "broker_port"):
            rows = self.con.execute(
                "select broker_addr, broker_port from kafka_requests where broker_addr is not null "
                "group by all order by count(*) desc, broker_addr, broker_port limit 1"
            ).fetchall()
            if rows:
                return f"broker {rows[0][0]}:{rows[0][1]}"
        return None

    def clock_offsets(self) -> pl.DataFrame | Missing:
        """Clock offsets the correlation applied, from a clock_offsets table or the settings."""
        if self.has("clock_offsets"):
            frame = self.frame("select * from clock_offsets")
            if frame.height:
                return frame
        rows = [(k, v) for k, v in self.settings().items() if "offset" in k.lower()]
        if rows:
            return pl.DataFrame(
                {"setting": [k for k, _ in rows], "value": [str(v) for _, v in rows]},
                schema={"setting": pl.Utf8, "value": pl.Utf8},
            )
        if not self.has("settings") and not self.has("clock_offsets"):
            return Missing("correlation has not run: no settings or clock_offsets table, so no offsets were applied")
        return Missing("no clock offsets recorded: every source's clock was taken as is")

    # -- requests -------------------------------------------------------------------
    def request_source(self) -> tuple[str, str] | Missing:
        """SQL relation of request x partition rows with latency, and where it comes from."""
        need = ("conn_id", "correlation_id", "topic", "partition", "arrival_at", "end_at", "latency_ms")
        for table, note in (
            ("attribution", "attribution (correlated)"),
            ("produce_partitions", "produce_partitions (capture only: correlation has not run)"),
        ):
            if self.has(table, *need) and self.rows(table, "latency_ms is not null") > 0:
                return f'(select * from "{table}" where latency_ms is not null)', note
        if self.has("artifacts", "kind") and not self.rows("artifacts", "kind in ('pcap', 'pcapng')"):
            return Missing("no produce requests: the bundle holds no packet capture")
        return Missing("no produce requests: no attribution rows and no Produce requests in produce_partitions")

    def unanswered(self) -> int:
        """Produce partitions seen without a response (no latency), from the source in use."""
        src = self.request_source()
        if isinstance(src, Missing):
            return 0
        table = "attribution" if src[1].startswith("attribution") else "produce_partitions"
        return self.rows(table, "latency_ms is null")

    def slow_expr(self) -> str:
        """SQL predicate for a slow attribution row: its flag, else latency >= SLO."""
        if self.has("attribution", "slow") and self.slo_override is None:
            return f"coalesce(slow, latency_ms >= {self.slo_ms})"
        return f"latency_ms >= {self.slo_ms}"

    def window(self) -> Window | Missing:
        if self._window is not None:
            return self._window
        src = self.request_source()
        if isinstance(src, Missing):
            bounds = self._other_bounds()
            if bounds is None:
                self._window = src
                return src
        else:
            bounds = self.con.execute(f"select min(arrival_at), max(end_at) from {src[0]}").fetchall()[0]
        start, end = bounds
        seconds = max((end - start).total_seconds(), 1e-3)
        self._window = Window(start, end, nice_bin_s(seconds))
        return self._window

    def _other_bounds(self) -> tuple[dt.datetime, dt.datetime] | None:
        parts = [
            f'select min(start_at) s, max(end_at) e from "{t}"'
            for t in ("fs_writes", "kernel_calls", "monitor_waits")
            if self.has(t, "start_at", "end_at")
        ]
        if not parts:
            return None
        row = self.con.execute(f"select min(s), max(e) from ({' union all '.join(parts)})").fetchall()[0]
        return None if row[0] is None else (row[0], row[1])

    # -- sections -------------------------------------------------------------------
    def artifacts(self) -> pl.DataFrame | Missing:
        if why := self.lacks("artifacts", "path", "kind", "status"):
            return Missing(why)
        errors = (
            "(select count(*) from ingest_errors e where e.artifact_id = a.artifact_id)"
            if self.has("ingest_errors", "artifact_id")
            else "null"
        )
        frame = self.frame(
            f"""
            select a.path, coalesce(a.kind, '-') as kind, a.status, a.rows,
                   {errors} as errors, a.error as note
            from artifacts a order by a.path
            """
        )
        return frame if frame.height else Missing("the artifacts table is empty: nothing was ingested")

    def percentiles(self) -> tuple[pl.DataFrame, str] | Missing:
        """Percentiles per request overall and per request x topic, with SLO violation counts."""
        src = self.request_source()
        if isinstance(src, Missing):
            return src
        rel, note = src
        slo = self.slo_ms
        qs = ", ".join(str(q) for q in QUANTILES)
        frame = self.frame(
            f"""
            with per_request as (
                select conn_id, correlation_id, max(latency_ms) as latency_ms from {rel} group by all
            ), per_topic as (
                select topic, conn_id, correlation_id, max(latency_ms) as latency_ms from {rel} group by all
            ), stats as (
                select 0 as ord, 'all topics' as scope, count(*) as requests,
                       quantile_cont(latency_ms, [{qs}]) as q, max(latency_ms) as max_ms,
                       count(*) filter (where latency_ms >= {slo}) as slow
                from per_request
                union all
                select 1, coalesce(topic, '(unknown topic)'), count(*), quantile_cont(latency_ms, [{qs}]),
                       max(latency_ms), count(*) filter (where latency_ms >= {slo})
                from per_topic group by topic
            )
            select scope, requests, q[1] as p50_ms, q[2] as p90_ms, q[3] as p99_ms, q[4] as p999_ms, max_ms,
                   slow, 100.0 * slow / requests as slow_pct
            from stats order by ord, slow desc, requests desc, scope
            """
        )
        return frame, note

    def causes(self) -> pl.DataFrame | Missing:
        """Slow requests by immediate cause and root cause, with shares of all slow ones."""
        if why := self.lacks("attribution", "latency_ms", "cause"):
            return Missing(f"correlation has not run: {why}, so slow requests have no cause yet")
        root = "coalesce(root_cause, 'none')" if self.has("attribution", "root_cause") else "'none'"
        explained = "sum(explained_ms)" if self.has("attribution", "explained_ms") else "null"
        frame = self.frame(
            f"""
            select coalesce(cause, 'unexplained') as cause, {root} as root_cause, count(*) as requests,
                   100.0 * count(*) / sum(count(*)) over () as pct_of_slow,
                   median(latency_ms) as median_ms, max(latency_ms) as max_ms,
                   100.0 * {explained} / nullif(sum(latency_ms), 0) as explained_pct
            from attribution where {self.slow_expr()}
            group by all order by requests desc, cause, root_cause
            """
        )
        if frame.height == 0:
            return Missing(f"no request reached the {self.slo_ms:g} ms SLO: nothing to explain")
        return frame

    def cause_counts(self) -> pl.DataFrame | Missing:
        """Slow requests per (scope, cause): scope is 'all topics' or a topic."""
        if why := self.lacks("attribution", "latency_ms", "cause", "topic"):
            return Missing(f"correlation has not run: {why}")
        return self.frame(
            f"""
            select 'all topics' as scope, coalesce(cause, 'unexplained') as cause, count(*) as requests
            from attribution where {self.slow_expr()} group by all
            union all
            select coalesce(topic, '(unknown topic)'), coalesce(cause, 'unexplained'), count(*)
            from attribution where {self.slow_expr()} group by all
            """
        )

    def heatmap(self, rel: str | None = None, window: Window | None = None) -> pl.DataFrame | Missing:
        """Request counts per (time bin, log-latency bucket): columns tb, lb, n."""
        if rel is None:
            src = self.request_source()
            if isinstance(src, Missing):
                return src
            rel = src[0]
        w = window or self.window()
        if isinstance(w, Missing):
            return w
        bin_us = int(w.bin_s * 1_000_000)
        return self.frame(
            f"""
            with r as (select arrival_at, max(latency_ms) as latency_ms from {rel} group by conn_id, correlation_id, arrival_at)
            select (epoch_us(arrival_at) - epoch_us(?::timestamp)) // {bin_us} as tb,
                   cast(floor(log10(greatest(latency_ms, {HEAT_MIN_MS})) * {HEAT_PER_DECADE}) as integer) as lb,
                   count(*) as n
            from r group by all
            """,
            [w.start],
        )

    def distribution(self, per_decade: int = 40) -> pl.DataFrame | Missing:
        """Requests per log-latency bucket (upper_ms, n), for CDFs."""
        src = self.request_source()
        if isinstance(src, Missing):
            return src
        return self.frame(
            f"""
            with r as (select max(latency_ms) as latency_ms from {src[0]} group by conn_id, correlation_id)
            select pow(10, (b + 1) / {per_decade}) as upper_ms, count(*) as n
            from (select floor(log10(greatest(latency_ms, 0.001)) * {per_decade}) as b from r)
            group by b order by b
            """
        )

    def disk_series(self) -> dict[str, pl.DataFrame | Missing]:
        """Max write latency and max journal-commit latency per time bin."""
        w = self.window()
        out: dict[str, pl.DataFrame | Missing] = {}
        if isinstance(w, Missing):
            return {"writes": w, "commits": w}
        bin_us = int(w.bin_s * 1_000_000)
        if why := self.lacks("fs_writes", "start_at", "latency_ms"):
            out["writes"] = Missing(f"{why}: the bundle holds no eBPF file-system trace")
        else:
            only_writes = "and operation = 'write'" if self.has("fs_writes", "operation") else ""
            frame = self.frame(
                f"""
                select (epoch_us(start_at) - epoch_us(?::timestamp)) // {bin_us} as tb,
                       max(latency_ms) as max_ms, count(*) as writes
                from fs_writes where latency_ms is not null {only_writes}
                group by tb order by tb
                """,
                [w.start],
            )
            out["writes"] = frame if frame.height else Missing("fs_writes is empty: no traced writes")
        if why := self.lacks("kernel_calls", "func", "start_at", "latency_ms"):
            out["commits"] = Missing(f"{why}: the bundle holds no journal-commit trace")
        else:
            frame = self.frame(
                f"""
                select func, (epoch_us(start_at) - epoch_us(?::timestamp)) // {bin_us} as tb,
                       max(latency_ms) as max_ms, count(*) as calls
                from kernel_calls
                where latency_ms is not null and (func like '%commit%' or func in ({_sql_list(COMMIT_FUNCS)}))
                group by all order by func, tb
                """,
                [w.start],
            )
            out["commits"] = (
                frame if frame.height else Missing("kernel_calls holds no journal commit (jbd2_*commit*) calls")
            )
        return out

    def disk_summary(self) -> pl.DataFrame | Missing:
        """Per traced function: calls, p99 and max latency (writes and journal commits)."""
        parts = []
        if self.has("fs_writes", "latency_ms"):
            op = "coalesce(operation, 'write')" if self.has("fs_writes", "operation") else "'write'"
            parts.append(f"select 'fs ' || {op} as what, latency_ms from fs_writes where latency_ms is not null")
        if self.has("kernel_calls", "func", "latency_ms"):
            parts.append("select func as what, latency_ms from kernel_calls where latency_ms is not null")
        if not parts:
            return Missing("no eBPF traces: no fs_writes or kernel_calls table")
        frame = self.frame(
            f"""
            select what, count(*) as calls, quantile_cont(latency_ms, 0.99) as p99_ms,
                   quantile_cont(latency_ms, 0.999) as p999_ms, max(latency_ms) as max_ms,
                   count(*) filter (where latency_ms >= {self.slo_ms}) as over_slo
            from ({" union all ".join(parts)}) group by what order by max_ms desc
            """
        )
        return frame if frame.height else Missing("the eBPF traces hold no calls")

    def worst(self, limit: int = 20) -> pl.DataFrame | Missing:
        """The slowest requests at or above the SLO, with their cause and evidence chain."""
        src = self.request_source()
        if isinstance(src, Missing):
            return src
        rel, _ = src
        cols = self.columns.get("attribution", []) if rel.startswith('(select * from "attribution"') else []
        extra = [
            c
            for c in (
                "cause",
                "root_cause",
                "handler_tid",
                "handler_thread",
                "write_tid",
                "write_latency_ms",
                "blocker_tid",
                "blocker_thread",
                "commit_start_at",
                "commit_latency_ms",
                "explained_ms",
                "chain",
                "missing",
            )
            if c in cols
        ]
        select = ", ".join(
            ["conn_id", "correlation_id", "topic", "partition", "arrival_at", "end_at", "latency_ms", *extra]
        )
        return self.frame(
            f"select {select} from {rel} where latency_ms >= {self.slo_ms} "
            f"order by latency_ms desc, arrival_at limit {int(limit)}"
        )

    def blockers(self) -> dict[str, pl.DataFrame | Missing]:
        """Threads, partitions and segments behind the most slow requests."""
        out: dict[str, pl.DataFrame | Missing] = {}
        slow = self.slow_expr()
        if why := self.lacks("attribution", "blocker_tid", "latency_ms"):
            out["threads"] = Missing(f"correlation has not run: {why}")
        else:
            name = "any_value(blocker_thread)" if self.has("attribution", "blocker_thread") else "null"
            wname = (
                "any_value(case when write_tid = handler_tid then handler_thread end)"
                if self.has("attribution", "handler_thread", "handler_tid")
                else "null"
            )
            has_write = self.has("attribution", "write_tid")
            own = (
                f"""
                union all
                select 'own slow write' as role, write_tid as tid, {wname} as thread, count(*) as slow_requests,
                       sum(latency_ms) as total_ms, max(latency_ms) as max_ms
                from attribution where {slow} and write_tid is not null and cause = 'slow_write' group by write_tid
                """
                if has_write and self.has("attribution", "cause")
                else ""
            )
            frame = self.frame(
                f"""
                select * from (
                    select 'held the lock' as role, blocker_tid as tid, {name} as thread, count(*) as slow_requests,
                           sum(latency_ms) as total_ms, max(latency_ms) as max_ms
                    from attribution where {slow} and blocker_tid is not null group by blocker_tid
                    {own}
                ) order by slow_requests desc, total_ms desc, role, tid limit 10
                """
            )
            names = self.thread_names(frame["tid"].to_list()).rename({"name": "known_name"})
            frame = (
                frame.join(names, on="tid", how="left", maintain_order="left")
                .with_columns(pl.coalesce("thread", "known_name").alias("thread"))
                .drop("known_name")
            )
            out["threads"] = (
                frame if frame.height else Missing("no slow request names a blocking or slow-writing thread")
            )
        src = self.request_source()
        if isinstance(src, Missing):
            out["partitions"] = src
        else:
            rel, _ = src
            frame = self.frame(
                f"""
                select topic, partition, count(*) filter (where latency_ms >= {self.slo_ms}) as slow_requests,
                       count(*) as requests, max(latency_ms) as max_ms
                from {rel} group by all having slow_requests > 0
                order by slow_requests desc, max_ms desc limit 10
                """
            )
            out["partitions"] = frame if frame.height else Missing("no partition had a slow request")
        if why := self.lacks("fs_writes", "segment", "latency_ms"):
            out["segments"] = Missing(f"{why}: the bundle holds no eBPF file-system trace")
        else:
            frame = self.frame(
                f"""
                select topic, partition, segment, count(*) filter (where latency_ms >= {self.slo_ms}) as slow_writes,
                       count(*) as writes, max(latency_ms) as max_ms, sum(latency_ms) as total_ms
                from fs_writes where segment is not null group by all having slow_writes > 0
                order by slow_writes desc, max_ms desc limit 10
                """
            )
            out["segments"] = (
                frame if frame.height else Missing(f"no traced write to a segment took {self.slo_ms:g} ms or more")
            )
        return out

    # -- timelines --------------------------------------------------------------------
    def episodes(self, count: int = 3) -> list[dict[str, Any]] | Missing:
        """The worst slow request of each of the worst stalls.

        Slow requests are grouped into stalls: a request joins the current stall when it
        arrives less than a second after the latest end so far. Each stall is represented by
        its slowest request; the `count` slowest representatives are returned.
        """
        src = self.request_source()
        if isinstance(src, Missing):
            return src
        rel, _ = src
        frame = self.frame(
            f"""
            with s as (
                select * from {rel} where latency_ms >= {self.slo_ms}
            ), o as (
                select *, max(epoch_us(end_at)) over (
                    order by arrival_at, conn_id, correlation_id rows between unbounded preceding and 1 preceding
                ) as prev_end_us
                from s
            ), g as (
                select *, sum(case when prev_end_us is null or epoch_us(arrival_at) > prev_end_us + 1000000
                                   then 1 else 0 end)
                          over (order by arrival_at, conn_id, correlation_id rows unbounded preceding) as stall
                from o
            )
            select * exclude (prev_end_us, stall) from g
            qualify row_number() over (partition by stall order by latency_ms desc, arrival_at, conn_id) = 1
            order by latency_ms desc, arrival_at limit {int(count)}
            """
        )
        if frame.height == 0:
            return Missing(f"no request reached the {self.slo_ms:g} ms SLO")
        return list(frame.iter_rows(named=True))

    def timeline(self, focus: dict[str, Any], max_requests: int = 8) -> dict[str, pl.DataFrame]:
        """Everything around one slow request on its partition: requests, writes, waits, commits."""
        pad = dt.timedelta(milliseconds=max(focus["latency_ms"] * 0.15, 5.0))
        lo, hi = focus["arrival_at"] - pad, focus["end_at"] + pad
        src = self.request_source()
        out: dict[str, pl.DataFrame] = {}
        rel = src[0] if not isinstance(src, Missing) else None
        if rel:
            cols = self.columns.get("attribution", []) if rel.startswith('(select * from "attribution"') else []
            extra = ", ".join(
                c for c in ("cause", "handler_tid", "handler_thread", "write_tid", "blocker_tid", "chain") if c in cols
            )
            out["requests"] = self.frame(
                f"""
                select conn_id, correlation_id, arrival_at, end_at, latency_ms {", " + extra if extra else ""}
                from {rel}
                where topic is not distinct from ? and partition is not distinct from ? and arrival_at < ? and end_at > ?
                order by (conn_id = ? and correlation_id = ?) desc, latency_ms desc limit {int(max_requests)}
                """,
                [focus["topic"], focus["partition"], hi, lo, focus["conn_id"], focus["correlation_id"]],
            ).sort("arrival_at")
        tids = set()
        if "requests" in out:
            for c in ("handler_tid", "write_tid", "blocker_tid"):
                if c in out["requests"].columns:
                    tids |= {t for t in out["requests"][c].to_list() if t is not None}
        if self.has("fs_writes", "start_at", "end_at", "tid", "topic", "partition", "latency_ms"):
            out["writes"] = self.frame(
                """
                select tid, start_at, end_at, latency_ms from fs_writes
                where topic is not distinct from ? and partition is not distinct from ? and start_at < ? and end_at > ?
                order by start_at limit 400
                """,
                [focus["topic"], focus["partition"], hi, lo],
            )
            tids |= set(out["writes"]["tid"].to_list())
        tid_list = sorted(t for t in tids if t is not None)
        handlers = (
            sorted({t for t in out["requests"]["handler_tid"].to_list() if t is not None})
            if "requests" in out and "handler_tid" in out["requests"].columns
            else []
        )
        wait_tids = handlers or tid_list
        if self.has("monitor_waits", "start_at", "end_at", "tid") and wait_tids:
            out["waits"] = self.frame(
                f"""
                select tid, start_at, end_at, {"thread_name" if self.has("monitor_waits", "thread_name") else "null as thread_name"}
                from monitor_waits where tid in ({_sql_list(wait_tids)}) and start_at < ? and end_at > ?
                order by start_at limit 400
                """,
                [hi, lo],
            )
        if self.has("kernel_calls", "func", "start_at", "end_at", "tid"):
            tid_filter = f"or tid in ({_sql_list(tid_list)})" if tid_list else ""
            out["kernel"] = self.frame(
                f"""
                select func, tid, start_at, end_at, latency_ms from kernel_calls
                where (func like '%commit%' {tid_filter}) and start_at < ? and end_at > ?
                order by start_at limit 200
                """,
                [hi, lo],
            )
        out["names"] = self.thread_names(tid_list)
        out["bounds"] = pl.DataFrame({"lo": [lo], "hi": [hi]})
        return out

    def thread_names(self, tids: list[int]) -> pl.DataFrame:
        """tid -> thread name from whatever JVM source names it."""
        parts = []
        if tids:
            ids = _sql_list(tids)
            for table, tid, name in (
                ("attribution", "handler_tid", "handler_thread"),
                ("attribution", "blocker_tid", "blocker_thread"),
                ("monitor_waits", "tid", "thread_name"),
                ("jfr_threads", "os_tid", "name"),
                ("jvm_threads", "tid", "name"),
            ):
                if self.has(table, tid, name):
                    parts.append(
                        f'select {tid} as tid, {name} as name from "{table}" where {tid} in ({ids}) and {name} is not null'
                    )
        if not parts:
            return pl.DataFrame(schema={"tid": pl.Int64, "name": pl.Utf8})
        return self.frame(f"select tid, any_value(name) as name from ({' union all '.join(parts)}) group by tid")


def _sql_list(values) -> str:
    out = []
    for v in values:
        if isinstance(v, str):
            out.append("'" + v.replace("'", "''") + "'")
        else:
            out.append(str(int(v)))
    return ", ".join(out) or "null"
