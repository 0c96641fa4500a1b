"""The lab's evaluation of one run: what really happened, and whether the pipeline said so.

Independent of the pipeline's parsers on purpose. It reads, from the run directory:

- ``broker-requests.tsv``: the broker's own timeline of every request (arrival, handler
  pickup, monitor wait, ``write()`` window, response), in CLOCK_MONOTONIC ns;
- ``bundle/ebpf/*.log``: the bpftrace output (tab-separated, trivially split here);
- ``bundle/jvm/broker.jfr`` through the JDK's own ``jfr print --json``;
- ``out/incident.duckdb`` when the pipeline produced an ``attribution`` table.

All instants are brought to CLOCK_MONOTONIC ns with the run's clock pairing
(``boot_time_ns``: wall clock minus monotonic, measured by the lab on the same machine).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
from collections import Counter
from pathlib import Path

import polars as pl

HANDLER_COMM = "data-plane-kafk"  # request handler threads' comm (15 characters)
SLOW_WRITE_MS = 10.0
CAUSES = ("slow_write", "monitor_wait", "head_of_line", "queue_wait", "replication_wait", "unexplained")
MATCH_TOLERANCE_NS = 2_000_000
# journal windows traced by collect/bpftrace (journal.bt, xfs_log.bt) -> key in the evaluation
JOURNAL_EVENTS = {
    "jbd2_journal_commit_transaction": "commits",
    "ext4_fc_commit": "fast_commits",
    "xfs_log_iclog_write": "xfs_log_writes",
}


# ---------------------------------------------------------------- readers


def read_broker_log(path: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict[int, str]]:
    """The broker's request log: (requests, appends, handler tid → name)."""
    cols: dict[str, list[str]] = {}
    rows: dict[str, list[list[str]]] = {"request": [], "append": []}
    handlers: dict[int, str] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# columns\t"):
                parts = line.split("\t")[1:]
                cols[parts[0]] = parts[1:]
            elif line.startswith("# handler "):
                kv = dict(p.split("=", 1) for p in line[len("# handler ") :].split(" ", 1))
                handlers[int(kv["tid"])] = kv["name"]
            elif line and not line.startswith("#"):
                parts = line.split("\t")
                if parts[0] in rows:
                    rows[parts[0]].append(parts[1:])
    text = {"client_id", "topic", "segment"}

    def frame(kind: str) -> pl.DataFrame:
        names = cols[kind]
        data = list(zip(*rows[kind], strict=True)) if rows[kind] else [[] for _ in names]
        return pl.DataFrame(
            {
                n: pl.Series(n, list(v), dtype=pl.Utf8 if n in text else pl.Int64, strict=False)
                for n, v in zip(names, data, strict=True)
            }
            if rows[kind]
            else {n: pl.Series(n, [], dtype=pl.Utf8 if n in text else pl.Int64) for n in names}
        )

    return frame("request"), frame("append"), handlers


def read_bpftrace(path: Path) -> pl.DataFrame:
    """A ``kforensics bpftrace v1`` log (collect/bpftrace/*.bt) as a frame of text columns."""
    names: list[str] | None = None
    rows: list[list[str]] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# columns\t"):
                names = line.split("\t")[1:]
            elif line and not line.startswith("#") and names and "\t" in line:
                parts = line.split("\t")
                if len(parts) == len(names):
                    rows.append(parts)
    if names is None:
        return pl.DataFrame()
    frame = (
        pl.DataFrame(rows, schema=names, orient="row") if rows else pl.DataFrame(schema=dict.fromkeys(names, pl.Utf8))
    )
    ints = [c for c in ("start_ns", "end_ns", "tid", "pid", "bytes", "file_offset", "dev") if c in names]
    return frame.with_columns(pl.col(c).cast(pl.Int64, strict=False) for c in ints)


def _iso_ns(text: str) -> int:
    """An ISO instant with up to nanosecond digits → ns since the epoch."""
    text = text.replace("Z", "+00:00")
    head, _, frac_tz = text.partition(".")
    if not frac_tz:
        return int(dt.datetime.fromisoformat(text).timestamp()) * 1_000_000_000
    digits = ""
    for ch in frac_tz:
        if not ch.isdigit():
            break
        digits += ch
    tz = frac_tz[len(digits) :]
    base = dt.datetime.fromisoformat(head + tz)
    return int(base.timestamp()) * 1_000_000_000 + int((digits + "000000000")[:9])


def _duration_ns(text: str) -> int:
    """An ISO-8601 duration as ``jfr print --json`` writes it (PT0.001133892S, PT1M2.5S)."""
    assert text.startswith("PT"), text
    total = 0.0
    num = ""
    for ch in text[2:]:
        if ch.isdigit() or ch == ".":
            num += ch
            continue
        total += float(num) * {"H": 3600, "M": 60, "S": 1}[ch]
        num = ""
    return round(total * 1e9)


def jfr_monitor_waits(jfr: Path, boot_time_ns: int) -> pl.DataFrame:
    """JavaMonitorEnter events through the JDK's ``jfr print --json``, in monotonic ns."""
    out = subprocess.run(
        ["jfr", "print", "--json", "--stack-depth", "1", "--events", "jdk.JavaMonitorEnter", str(jfr)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(f"jfr print failed: {out.stderr.strip()[:300]}")
    events = json.loads(out.stdout)["recording"]["events"]
    rows = []
    for e in events:
        v = e["values"]
        start = _iso_ns(v["startTime"]) - boot_time_ns
        thread = v.get("eventThread") or {}
        prev = v.get("previousOwner") or {}
        rows.append(
            {
                "start_ns": start,
                "end_ns": start + _duration_ns(v["duration"]),
                "tid": thread.get("osThreadId"),
                "thread": thread.get("javaName"),
                "monitor_class": (v.get("monitorClass") or {}).get("name"),
                "previous_owner_tid": prev.get("osThreadId"),
            }
        )
    schema = {
        "start_ns": pl.Int64,
        "end_ns": pl.Int64,
        "tid": pl.Int64,
        "thread": pl.Utf8,
        "monitor_class": pl.Utf8,
        "previous_owner_tid": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


# ---------------------------------------------------------------- statistics


def latency_stats(ms: list[float] | pl.Series, slo_ms: float | None = None) -> dict:
    s = pl.Series("ms", ms, dtype=pl.Float64).drop_nulls()
    if s.len() == 0:
        return {"n": 0}
    out = {
        "n": s.len(),
        "p50": s.quantile(0.5, "nearest"),
        "p99": s.quantile(0.99, "nearest"),
        "p999": s.quantile(0.999, "nearest"),
        "max": s.max(),
    }
    if slo_ms is not None:
        out["over_slo"] = int((s >= slo_ms).sum())
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def overlaps(a_start: int, a_end: int, windows: list[tuple[int, int]]) -> bool:
    return any(s <= a_end and e >= a_start for s, e in windows)


# ---------------------------------------------------------------- the broker's truth


def broker_timeline(requests: pl.DataFrame, appends: pl.DataFrame) -> pl.DataFrame:
    """One row per produce request × partition with the broker's own decomposition.

    ``prev_sent_ns`` is when the broker finished answering the previous request of the same
    connection: until then the connection was muted and this request could not be read.
    """
    ordered = requests.sort("arrival_ns").with_columns(
        pl.col("sent_ns").shift(1).over("client_port").alias("prev_sent_ns")
    )
    produce = ordered.filter(pl.col("api_key") == 0).with_columns(
        ((pl.col("sent_ns") - pl.col("arrival_ns")) / 1e6).alias("broker_ms"),
        ((pl.col("dequeue_ns") - pl.col("arrival_ns")) / 1e6).alias("queue_ms"),
    )
    per_request = appends.group_by("client_port", "correlation_id").agg(
        ((pl.col("lock_acquired_ns") - pl.col("lock_requested_ns")).clip(0).sum() / 1e6).alias("lock_ms"),
        ((pl.col("write_end_ns") - pl.col("write_start_ns")).clip(0).sum() / 1e6).alias("write_ms"),
    )
    return (
        appends.join(produce, on=["client_port", "correlation_id"], how="inner")
        .join(per_request, on=["client_port", "correlation_id"], how="left")
        .with_columns(
            ((pl.col("lock_acquired_ns") - pl.col("lock_requested_ns")) / 1e6).alias("own_lock_ms"),
            ((pl.col("write_end_ns") - pl.col("write_start_ns")) / 1e6).alias("own_write_ms"),
        )
    )


def pre_read_split(wire_arrival_ns: int, broker_arrival_ns: int, prev_sent_ns: int | None) -> tuple[float, float]:
    """(head-of-line ms, read delay ms) between the request's last byte on the wire and the
    broker reading it: muted behind the previous request until ``prev_sent_ns``, then the
    rest waiting for the network thread (CPU scheduling)."""
    muted_until = wire_arrival_ns if prev_sent_ns is None else max(wire_arrival_ns, prev_sent_ns)
    hol = max(0, min(muted_until, broker_arrival_ns) - wire_arrival_ns) / 1e6
    read = max(0, broker_arrival_ns - muted_until) / 1e6
    return hol, read


def truth_cause(
    queue_ms: float, lock_ms: float, write_ms: float, hol_ms: float = 0.0, read_delay_ms: float = 0.0
) -> str:
    """The component that took most of a slow request's time, by the broker's own clock.

    ``read_delay`` (the connection was free but its network thread read the request late) has
    no counterpart among the pipeline's causes.
    """
    parts = {
        "head_of_line": hol_ms,
        "read_delay": read_delay_ms,
        "queue_wait": queue_ms,
        "monitor_wait": lock_ms,
        "slow_write": write_ms,
    }
    cause, ms = max(parts.items(), key=lambda kv: kv[1])
    return cause if ms > 0 else "other"


# ---------------------------------------------------------------- evaluation


def _first(ebpf: Path, stem: str) -> Path:
    """The kit's output name (``.txt``), or ``.log`` as earlier lab runs wrote it."""
    txt = ebpf / f"{stem}.txt"
    return txt if txt.is_file() or not (ebpf / f"{stem}.log").is_file() else ebpf / f"{stem}.log"


def evaluate_run(outdir: Path, slo_ms: float = 65.0) -> dict:
    """Everything the lab knows about one run, and the pipeline checks where possible."""
    outdir = Path(outdir)
    run = json.loads((outdir / "lab-run.json").read_text())
    boot = run["clock_start"]["boot_time_ns"]
    ev: dict = {"run": run.get("run_id"), "config": run["config"]["name"], "slo_ms": slo_ms, "failures": []}
    requests, appends, handlers = read_broker_log(outdir / "broker-requests.tsv")
    timeline = broker_timeline(requests, appends)
    produce = requests.filter(pl.col("api_key") == 0)
    broker_ms = ((produce["sent_ns"] - produce["arrival_ns"]) / 1e6).to_list()
    ev["broker"] = {
        "requests": requests.height,
        "produce_requests": produce.height,
        "appends": appends.height,
        "append_errors": int((appends["error_code"] != 0).sum()),
        "handlers": len(handlers),
        "produce_latency_ms": latency_stats(broker_ms, slo_ms),
        "queue_ms": latency_stats(timeline["queue_ms"].to_list()),
        "monitor_wait_ms": latency_stats(timeline["own_lock_ms"].to_list()),
        "write_ms": latency_stats(timeline["own_write_ms"].to_list()),
    }
    producer = outdir / "producer.tsv"
    if producer.is_file():
        prod = pl.read_csv(producer, separator="\t", comment_prefix="#", infer_schema_length=0)
        errors = prod.filter(pl.col("error").is_not_null() & (pl.col("error") != ""))
        delivered = prod.filter(pl.col("error").is_null() | (pl.col("error") == ""))
        lat = ((delivered["delivered_ns"].cast(pl.Int64) - delivered["send_ns"].cast(pl.Int64)) / 1e6).to_list()
        ev["producer"] = {"messages": prod.height, "errors": errors.height, "delivery_ms": latency_stats(lat, slo_ms)}

    # kernel evidence
    ebpf = outdir / "bundle" / "ebpf"
    writes = read_bpftrace(_first(ebpf, "fs_writes"))
    journal = pl.concat(
        [read_bpftrace(_first(ebpf, name)) for name in ("journal", "xfs_log") if _first(ebpf, name).is_file()]
        or [pl.DataFrame()],
        how="diagonal",
    )
    commits: list[tuple[int, int]] = []
    ev["journal"] = {"commits": 0, "fast_commits": 0, "xfs_log_writes": 0, "commit_ms": {"n": 0}}
    if journal.height:
        jc = journal.filter(pl.col("event").is_in(list(JOURNAL_EVENTS)))
        commits = list(zip(jc["start_ns"].to_list(), jc["end_ns"].to_list(), strict=True))
        ev["journal"] = {key: int((jc["event"] == event).sum()) for event, key in JOURNAL_EVENTS.items()} | {
            "commit_ms": latency_stats(((jc["end_ns"] - jc["start_ns"]) / 1e6).to_list())
        }
    if writes.height:
        hw = writes.filter((pl.col("event") == "write") & (pl.col("comm") == HANDLER_COMM))
        hw = hw.with_columns(((pl.col("end_ns") - pl.col("start_ns")) / 1e6).alias("latency_ms"))
        slow = hw.filter(pl.col("latency_ms") >= SLOW_WRITE_MS)
        in_commit = sum(overlaps(s, e, commits) for s, e in zip(slow["start_ns"], slow["end_ns"], strict=True))
        span = (hw["end_ns"].max() - hw["start_ns"].min()) if hw.height else 0
        busy = sum(e - s for s, e in commits)
        ev["writes"] = {
            "handler_writes": hw.height,
            "write_ms": latency_stats(hw["latency_ms"].to_list()),
            "slow_writes": slow.height,
            "slow_writes_in_commit": in_commit,
            "commit_time_fraction": round(busy / span, 4) if span else None,
        }
        # the tracer against the broker: the same write at the same file offset
        traced = hw.with_columns(
            pl.col("path").str.split("/").list.get(0).alias("partition_dir"),
            pl.col("path").str.split("/").list.get(1).alias("segment"),
        )
        mine = appends.filter(pl.col("error_code") == 0).with_columns(
            (pl.col("topic") + "-" + pl.col("partition").cast(pl.Utf8)).alias("partition_dir")
        )
        joined = mine.join(
            traced.select(
                "partition_dir", "segment", pl.col("file_offset").alias("file_position"), "latency_ms", "tid"
            ),
            on=["partition_dir", "segment", "file_position"],
            how="left",
        )
        matched = joined.filter(pl.col("latency_ms").is_not_null())
        own = (matched["write_end_ns"] - matched["write_start_ns"]) / 1e6
        ev["tracer_coverage"] = {
            "broker_appends": mine.height,
            "traced": matched.height,
            "missing": mine.height - matched.height,
            # the kernel's write() window sits inside the broker's FileChannel.write window
            "traced_minus_broker_ms": latency_stats((matched["latency_ms"] - own).to_list()),
        }
    # JFR
    jfr = outdir / "bundle" / "jvm" / "broker.jfr"
    waits = pl.DataFrame()
    if jfr.is_file():
        try:
            waits = jfr_monitor_waits(jfr, boot)
            ev["jfr"] = {
                "monitor_waits": waits.height,
                "wait_ms": latency_stats(((waits["end_ns"] - waits["start_ns"]) / 1e6).to_list()),
            }
            long_locks = timeline.filter(pl.col("own_lock_ms") >= 2.0)
            seen = 0
            by_tid: dict[int, list[tuple[int, int]]] = {}
            for s, e, t in zip(waits["start_ns"], waits["end_ns"], waits["tid"], strict=True):
                by_tid.setdefault(t, []).append((s, e))
            for s, e, t in zip(
                long_locks["lock_requested_ns"], long_locks["lock_acquired_ns"], long_locks["handler_tid"], strict=True
            ):
                seen += overlaps(s, e, by_tid.get(t, []))
            ev["jfr"]["broker_waits_2ms"] = long_locks.height
            ev["jfr"]["broker_waits_2ms_in_jfr"] = seen
        except (RuntimeError, OSError, ValueError, KeyError) as exc:
            ev["jfr"] = {"error": str(exc)}
    else:
        ev["jfr"] = {"error": "no recording"}

    # truth causes by the broker's clock (wire-side waits added when the pipeline gives arrival_at)
    slow_rows = timeline.filter(pl.col("broker_ms") >= slo_ms)
    ev["broker_causes"] = dict(
        Counter(
            truth_cause(q, lk, w)
            for q, lk, w in zip(slow_rows["queue_ms"], slow_rows["lock_ms"], slow_rows["write_ms"], strict=True)
        )
    )
    ev["pipeline"] = check_pipeline(outdir / "out", timeline, commits, waits, writes, boot, slo_ms, ev["failures"])
    return ev


def _attribution(out: Path) -> tuple[pl.DataFrame | None, str | None, pl.DataFrame | None]:
    db = out / "incident.duckdb"
    if not db.is_file():
        return None, f"no pipeline output ({db} missing)", None
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        reqs = None
        if "kafka_requests" in tables:
            reqs = con.sql("select api_key, latency_ms from kafka_requests where api_key = 0").pl()
        if "attribution" not in tables:
            return None, "the pipeline produced no attribution table (correlation not available in this build)", reqs
        return con.sql("select * from attribution").pl(), None, reqs
    finally:
        con.close()


def _mono(col: str, boot: int) -> pl.Expr:
    return pl.col(col).cast(pl.Datetime("ns")).cast(pl.Int64) - boot


def check_pipeline(
    out: Path,
    timeline: pl.DataFrame,
    commits: list[tuple[int, int]],
    waits: pl.DataFrame,
    writes: pl.DataFrame,
    boot: int,
    slo_ms: float,
    failures: list[str],
) -> dict:
    """The pipeline's attributions against the run's independent evidence."""
    try:
        attr, why, wire = _attribution(out)
    except Exception as exc:  # noqa: BLE001 - a broken database is a finding, not a crash
        return {"status": "error", "reason": f"cannot read the pipeline output: {exc}"}
    res: dict = {}
    if wire is not None and wire.height:
        res["wire_produce_latency_ms"] = latency_stats(wire["latency_ms"].to_list(), slo_ms)
    if attr is None:
        res.update(status="skipped", reason=why)
        return res
    need = {"cause", "root_cause", "arrival_at", "end_at", "client_port", "correlation_id", "partition"}
    if missing := need - set(attr.columns):
        res.update(status="error", reason=f"attribution lacks columns {sorted(missing)}")
        failures.append(res["reason"])
        return res
    attr = attr.with_columns(_mono("arrival_at", boot).alias("a_ns"), _mono("end_at", boot).alias("e_ns"))
    slow = attr.filter(pl.col("cause").is_not_null())
    res["status"] = "checked"
    res["slow"] = slow.height
    res["causes"] = dict(Counter(slow["cause"].to_list()))
    res["root_causes"] = dict(Counter(r for r in slow["root_cause"].to_list()))

    # every journal_commit overlaps a traced commit (and the one it names, when it names one).
    # A root cause inherited along a head-of-line chain is checked on the request at the root of
    # the chain: the one whose own write (or its blocker's) the commit delayed.
    by_pp = {}
    if "pp_id" in attr.columns:
        by_pp = {r["pp_id"]: r for r in attr.select("pp_id", "a_ns", "e_ns").iter_rows(named=True)}
    jc = slow.filter(pl.col("root_cause") == "journal_commit")
    bad, inherited = [], 0
    for row in jc.iter_rows(named=True):
        root = by_pp.get(row.get("root_pp_id"), row) if row.get("root_pp_id") is not None else row
        inherited += root is not row and root.get("pp_id") != row.get("pp_id")
        named = row.get("commit_start_at")
        named_ns = None if named is None else int(named.replace(tzinfo=dt.UTC).timestamp() * 1e9) - boot
        ok = any(
            s <= root["e_ns"] and e >= root["a_ns"] and (named_ns is None or abs(s - named_ns) <= MATCH_TOLERANCE_NS)
            for s, e in commits
        )
        if not ok:
            bad.append((row["client_port"], row["correlation_id"], row["partition"]))
    res["journal_commit"] = {
        "attributed": jc.height,
        "confirmed": jc.height - len(bad),
        "inherited": inherited,
        "unconfirmed": bad[:20],
    }
    if bad:
        failures.append(f"{len(bad)} of {jc.height} journal_commit attributions overlap no traced commit")

    # every monitor_wait matches a JFR wait of its handler inside the request window
    mw = slow.filter(pl.col("cause") == "monitor_wait")
    by_tid: dict[int, list[tuple[int, int]]] = {}
    if waits.height:
        for s, e, t in zip(waits["start_ns"], waits["end_ns"], waits["tid"], strict=True):
            by_tid.setdefault(t, []).append((s, e))
    bad = []
    for row in mw.iter_rows(named=True):
        tid = row.get("handler_tid")
        if tid is None or not overlaps(row["a_ns"], row["e_ns"], by_tid.get(int(tid), [])):
            bad.append((row["client_port"], row["correlation_id"], row["partition"]))
    res["monitor_wait"] = {"attributed": mw.height, "confirmed": mw.height - len(bad), "unconfirmed": bad[:20]}
    if bad:
        failures.append(f"{len(bad)} of {mw.height} monitor_wait attributions match no JFR wait of their handler")

    # every slow_write names a traced write of that thread in the window
    sw = slow.filter(pl.col("cause") == "slow_write")
    tw: dict[int, list[tuple[int, int]]] = {}
    if writes.height:
        w = writes.filter(pl.col("event") == "write")
        for s, e, t in zip(w["start_ns"], w["end_ns"], w["tid"], strict=True):
            tw.setdefault(t, []).append((s, e))
    bad = []
    for row in sw.iter_rows(named=True):
        tid = row.get("write_tid")
        if tid is None or not overlaps(row["a_ns"], row["e_ns"], tw.get(int(tid), [])):
            bad.append((row["client_port"], row["correlation_id"], row["partition"]))
    res["slow_write"] = {"attributed": sw.height, "confirmed": sw.height - len(bad), "unconfirmed": bad[:20]}
    if bad:
        failures.append(f"{len(bad)} of {sw.height} slow_write attributions match no traced write of their thread")

    un = slow.filter(pl.col("cause") == "unexplained")
    res["unexplained"] = {
        "count": un.height,
        "missing": dict(Counter(str(m) for m in un["missing"].to_list())) if "missing" in un.columns else {},
    }

    # agreement with the broker's own decomposition
    joined = slow.join(
        timeline.select(
            "client_port",
            "correlation_id",
            "partition",
            pl.col("arrival_ns").alias("b_arrival_ns"),
            pl.col("prev_sent_ns").alias("b_prev_sent_ns"),
            pl.col("queue_ms").alias("b_queue_ms"),
            pl.col("lock_ms").alias("b_lock_ms"),
            pl.col("write_ms").alias("b_write_ms"),
        ),
        on=["client_port", "correlation_id", "partition"],
        how="left",
    )
    pairs = Counter()
    for row in joined.iter_rows(named=True):
        if row["b_arrival_ns"] is None:
            pairs[(row["cause"], "not in broker log")] += 1
            continue
        hol, read = pre_read_split(row["a_ns"], row["b_arrival_ns"], row["b_prev_sent_ns"])
        truth = truth_cause(row["b_queue_ms"], row["b_lock_ms"], row["b_write_ms"], hol, read)
        pairs[(row["cause"], truth)] += 1
    agree = sum(n for (c, t), n in pairs.items() if c == t)
    res["agreement"] = {
        "slow": slow.height,
        "same_cause_as_broker": agree,
        "pairs": {f"{c} / {t}": n for (c, t), n in sorted(pairs.items())},
    }
    return res


def render_evaluation(ev: dict) -> str:
    """A short human summary of :func:`evaluate_run`."""
    b = ev["broker"]
    lines = [f"== {ev['run']} ({ev['config']})"]
    pl_ = b["produce_latency_ms"]
    lines.append(
        f"broker: {b['produce_requests']} produce requests, {b['appends']} appends ({b['append_errors']} refused); "
        f"latency p50 {pl_.get('p50')} p99 {pl_.get('p99')} p999 {pl_.get('p999')} max {pl_.get('max')} ms, "
        f"{pl_.get('over_slo')} ≥ {ev['slo_ms']:g} ms"
    )
    if "producer" in ev:
        p = ev["producer"]
        lines.append(
            f"producer: {p['messages']} messages, {p['errors']} errors, delivery p999 {p['delivery_ms'].get('p999')} ms"
        )
    j = ev["journal"]
    lines.append(
        f"journal: {j['commits']} commits, {j['fast_commits']} fast commits, {j['xfs_log_writes']} XFS log writes; "
        f"p50 {j['commit_ms'].get('p50')} "
        f"max {j['commit_ms'].get('max')} ms"
    )
    if "writes" in ev:
        w = ev["writes"]
        lines.append(
            f"writes: {w['handler_writes']} by handlers, p999 {w['write_ms'].get('p999')} max {w['write_ms'].get('max')} ms; "
            f"{w['slow_writes_in_commit']} of {w['slow_writes']} writes ≥ {SLOW_WRITE_MS:g} ms overlap a commit "
            f"(commits cover {w['commit_time_fraction']} of the time)"
        )
    if "tracer_coverage" in ev:
        t = ev["tracer_coverage"]
        lines.append(f"tracer: {t['traced']} of {t['broker_appends']} broker appends traced at the same file offset")
    jf = ev.get("jfr", {})
    if "error" in jf:
        lines.append(f"jfr: {jf['error']}")
    else:
        lines.append(
            f"jfr: {jf['monitor_waits']} monitor waits ≥ 1 ms; {jf['broker_waits_2ms_in_jfr']} of "
            f"{jf['broker_waits_2ms']} broker-measured waits ≥ 2 ms recorded by JFR"
        )
    lines.append(f"slow requests by the broker's own clock: {ev['broker_causes'] or 'none'}")
    p = ev["pipeline"]
    if p.get("status") != "checked":
        lines.append(f"pipeline checks: {p.get('status')}: {p.get('reason')}")
    else:
        lines.append(f"pipeline: {p['slow']} slow request-partitions, causes {p['causes']}")
        for k in ("journal_commit", "monitor_wait", "slow_write"):
            extra = f" ({p[k]['inherited']} inherited along head-of-line chains)" if p[k].get("inherited") else ""
            lines.append(f"  {k}: {p[k]['confirmed']} of {p[k]['attributed']} confirmed by independent evidence{extra}")
        lines.append(f"  unexplained: {p['unexplained']['count']} {p['unexplained']['missing']}")
        a = p["agreement"]
        lines.append(f"  same cause as the broker's timeline: {a['same_cause_as_broker']} of {a['slow']}")
        differ = {k: n for k, n in a["pairs"].items() if k.split(" / ")[0] != k.split(" / ")[1]}
        if differ:
            lines.append(f"  differing (pipeline / broker timeline): {differ}")
    for f in ev["failures"]:
        lines.append(f"FAILED: {f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- matrix


def _runs_metric(evs: list[dict], getter) -> list[float]:
    vals = []
    for ev in evs:
        try:
            v = getter(ev)
        except (KeyError, TypeError):
            v = None
        if v is not None:
            vals.append(float(v))
    return vals


def matrix_table(results, baseline: str, slo_ms: float) -> dict:
    """Per configuration: each metric's median and range over runs, and a verdict vs the baseline."""
    from pipeline.lab import spread, verdict

    by_cfg: dict[str, list[dict]] = {}
    for r in results:
        by_cfg.setdefault(r.config, []).append(r.honesty)

    def latency(ev: dict) -> dict:
        wire = ev.get("pipeline", {}).get("wire_produce_latency_ms")
        return wire if wire and wire.get("n") else ev["broker"]["produce_latency_ms"]

    source = {
        cfg: "wire (pipeline)" if all(e.get("pipeline", {}).get("wire_produce_latency_ms") for e in evs) else "broker"
        for cfg, evs in by_cfg.items()
    }
    metrics = {
        "p50_ms": lambda e: latency(e)["p50"],
        "p99_ms": lambda e: latency(e)["p99"],
        "p999_ms": lambda e: latency(e)["p999"],
        "max_ms": lambda e: latency(e)["max"],
        "over_slo": lambda e: latency(e)["over_slo"],
        "write_p999_ms": lambda e: e["writes"]["write_ms"]["p999"],
        "write_max_ms": lambda e: e["writes"]["write_ms"]["max"],
        "commit_p50_ms": lambda e: e["journal"]["commit_ms"].get("p50"),
        "commit_max_ms": lambda e: e["journal"]["commit_ms"].get("max"),
    }
    rows = []
    for cfg, evs in by_cfg.items():
        row = {"config": cfg, "runs": len(evs), "latency_source": source[cfg]}
        for m, get in metrics.items():
            row[m] = spread(_runs_metric(evs, get))
        causes: Counter = Counter()
        pipeline_causes = all(e.get("pipeline", {}).get("status") == "checked" for e in evs)
        for e in evs:
            causes.update(e["pipeline"]["causes"] if pipeline_causes else e.get("broker_causes", {}))
        row["causes"] = dict(causes)
        row["causes_source"] = "pipeline" if pipeline_causes else "broker timeline"
        row["failures"] = sum(len(e.get("failures", [])) for e in evs)
        row["unexplained"] = sum(
            e.get("pipeline", {}).get("unexplained", {}).get("count", 0) for e in evs if pipeline_causes
        )
        rows.append(row)
    base = next((r for r in rows if r["config"] == baseline), rows[0])
    for row in rows:
        row["vs_baseline"] = {m: verdict(row[m], base[m]) for m in metrics}
    return {"baseline": base["config"], "slo_ms": slo_ms, "rows": rows}


def _fmt(s: dict) -> str:
    if not s["runs"]:
        return "–"
    if s["runs"] == 1:
        return f"{s['median']:.4g}"
    return f"{s['median']:.4g} [{s['min']:.4g}–{s['max']:.4g}]"


def render_matrix(table: dict) -> str:
    """The seed-style comparison as Markdown: median [min–max over runs] per configuration."""
    slo = table["slo_ms"]
    cols = ["p50_ms", "p99_ms", "p999_ms", "max_ms", "over_slo", "write_p999_ms", "commit_p50_ms", "commit_max_ms"]
    head = ["config", "runs", *cols, "causes of slow requests"]
    lines = [
        f"# Produce latency by file-system configuration (SLO {slo:g} ms)",
        "",
        "Each cell: median over runs [min–max]. A configuration is called lower or higher than the "
        f"baseline ({table['baseline']}) on a metric only where its range over runs does not overlap "
        "the baseline's; otherwise the difference is within the run-to-run spread and is not claimed.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in table["rows"]:
        causes = ", ".join(f"{k} {v}" for k, v in sorted(r["causes"].items(), key=lambda kv: -kv[1])) or "none"
        lines.append("| " + " | ".join([r["config"], str(r["runs"]), *(_fmt(r[c]) for c in cols), causes]) + " |")
    lines += ["", f"## Versus {table['baseline']}", ""]
    lines.append("| config | " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * (len(cols) + 1))
    for r in table["rows"]:
        if r["config"] == table["baseline"]:
            continue
        lines.append("| " + r["config"] + " | " + " | ".join(r["vs_baseline"][c] for c in cols) + " |")
    lines += [
        "",
        "Sources: request latency from "
        + ", ".join(sorted({f"{r['config']}: {r['latency_source']}" for r in table["rows"]}))
        + "; causes from "
        + ", ".join(sorted({f"{r['config']}: {r['causes_source']}" for r in table["rows"]}))
        + "; write and commit latency from the bpftrace logs.",
    ]
    fails = [r for r in table["rows"] if r["failures"]]
    unchecked = [r["config"] for r in table["rows"] if r["causes_source"] != "pipeline"]
    if fails:
        lines.append("Honesty checks FAILED in: " + ", ".join(f"{r['config']} ({r['failures']})" for r in fails))
    elif unchecked:
        lines.append(
            "Honesty checks not run for " + ", ".join(unchecked) + ": the pipeline produced no attribution there."
        )
    else:
        lines.append(
            "Honesty checks: every journal_commit, monitor_wait and slow_write attribution of every run "
            "is confirmed by the run's bpftrace and JFR evidence."
        )
    unexpl = [f"{r['config']} {r['unexplained']}" for r in table["rows"] if r["unexplained"]]
    if unexpl:
        lines.append("Unexplained slow requests: " + ", ".join(unexpl))
    return "\n".join(lines) + "\n"


def median_or_none(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None
