"""Recordings and thread dumps made here by the JDK from a program with real contention.

fixtures/jvm/KafkaLockSim.java runs request-handler threads that block on one partition
monitor while the holder writes and fsyncs. Every installed JDK records it; our tables are
checked against that JDK's own `jfr print` and the dumps against /proc/<pid>/task.
"""

from __future__ import annotations

import polars as pl
import pytest

from fixtures.jvm.jdk_runs import SimRun, jdk_homes, run_sim
from pipeline.ingest.jfr_format import Recording
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext
from tests.jvm.jfr_reference import compare, ours
from tests.jvm.test_jvm_threaddump import parse_dump

HOMES = jdk_homes()
pytestmark = [pytest.mark.needs_tool, pytest.mark.skipif(not HOMES, reason="no JDK (java, javac, jfr, jstack, jcmd)")]


@pytest.fixture(scope="module", params=HOMES, ids=lambda h: h.name)
def run(request, tmp_path_factory) -> SimRun:
    return run_sim(request.param, tmp_path_factory.mktemp("sim"), seconds=2)


def test_recording_equals_jdk_jfr_print(run):
    counts = compare(run.jfr, jfr=run.tool("jfr"))
    assert counts["jdk.JavaMonitorEnter"] > 10
    assert counts["jdk.FileWrite"] > 10
    assert counts["jdk.FileForce"] > 3
    assert counts["jdk.ExecutionSample"] > 10
    assert counts["jdk.ThreadPark"] > 3
    rec = Recording(run.jfr.read_bytes(), [])
    assert len(rec.chunks) >= 2  # the program starts a second recording: chunk rotation


def test_contention_and_writes(run):
    t, ctx = ours(run.jfr)
    assert [e for e in ctx.errors if e.severity != "info"] == []
    mw = t["monitor_waits"]
    enters = mw.filter(pl.col("event_type") == "jdk.JavaMonitorEnter")
    handlers = enters.filter(pl.col("thread_name").str.starts_with("data-plane-kafka-request-handler-"))
    assert handlers.height == enters.filter(pl.col("monitor_class") == "KafkaLockSim$Partition").height > 10
    assert set(handlers["monitor_class"]) == {"KafkaLockSim$Partition"}
    assert all(f[0].startswith("KafkaLockSim.append:") for f in handlers["top_frames"])
    assert (handlers["duration_ms"] >= 10).all()
    assert (handlers["end_at"] > handlers["start_at"]).all()
    assert set(handlers["source"]) == {"jdk"}
    fw = t["jvm_file_writes"]
    segment = str(run.jfr.parent / "00000000000000000000.log")
    writes = fw.filter((pl.col("event_type") == "jdk.FileWrite") & (pl.col("path") == segment))
    assert writes.height > 10 and set(writes["bytes"]) == {4096}
    assert set(writes["thread_name"]) <= {f"data-plane-kafka-request-handler-{i}" for i in range(4)}
    assert all(any(x.startswith("KafkaLockSim.append:") for x in f) for f in writes["top_frames"])
    forces = fw.filter(pl.col("event_type") == "jdk.FileForce")
    assert set(forces["path"]) == {segment}
    assert forces.height > 0 and forces["bytes"].null_count() == forces.height
    # every handler that blocked also wrote: TIDs agree between the tables
    assert set(handlers["tid"]) <= set(writes["tid"])
    s = t["thread_samples"]
    net = s.filter(pl.col("thread_name").str.starts_with("data-plane-kafka-network-thread-1"))
    assert net.height > 0 and set(net["state"]) == {"STATE_RUNNABLE"}
    park = mw.filter(
        (pl.col("event_type") == "jdk.ThreadPark") & (pl.col("thread_name") == "kafka-log-cleaner-thread-0")
    )
    assert park.height > 0
    assert set(park["monitor_class"]) == {"java.util.concurrent.locks.ReentrantLock$NonfairSync"}


def _check_dump_against_proc(run: SimRun, rows: pl.DataFrame) -> None:
    java = rows.filter(pl.col("java_thread_id").is_not_null())
    assert rows["tid"].null_count() == 0
    for r in rows.iter_rows(named=True):
        assert r["tid"] in run.tasks, (r["name"], r["tid"])
        comm = run.tasks[r["tid"]]
        # main keeps the launcher's comm; JDK 17 prints the JFR sampler with no name
        want = {"main": "java", "": "JFR Thread Samp"}.get(r["name"], r["name"][:15])
        assert comm == want, (r["name"], comm)
    nid_hex = run.version <= 17
    assert all(n.startswith("0x") == nid_hex for n in rows["nid"])
    names = set(java["name"])
    assert {f"data-plane-kafka-request-handler-{i}" for i in range(4)} <= names


def test_thread_dumps_map_to_proc_tasks(run):
    for path in (run.jstack, run.jstack_l, run.jcmd):
        rows = parse_dump(path)
        assert rows["dump_index"].unique().to_list() == [0]
        _check_dump_against_proc(run, rows)
        handlers = rows.filter(pl.col("name").str.starts_with("data-plane-kafka-request-handler-"))
        blocked = handlers.filter(pl.col("state") == "BLOCKED")
        holders = handlers.filter(pl.col("locked").list.len() > 0)
        # the partition monitor: held by at most one handler, the blocked ones wait for it.
        # HotSpot reads a thread's state before its locks: a handler that takes the monitor
        # in between is printed BLOCKED with "- locked" (seen in jcmd output); it is the holder.
        waiting = blocked.filter(pl.col("waiting_to_lock").is_not_null())
        assert blocked.height - waiting.height <= 1
        if waiting.height:
            assert waiting["waiting_to_lock"].n_unique() == 1
            if holders.height:
                assert holders["locked"].list.first().to_list() == [waiting["waiting_to_lock"][0]]
        assert blocked.height + holders.height >= 2


def test_jstack_l_ownable_synchronizers(run):
    rows = parse_dump(run.jstack_l)
    # every synchronizer listed under "Locked ownable synchronizers:" is in a row
    text = run.jstack_l.read_text()
    listed = []
    for section in text.split("Locked ownable synchronizers:")[1:]:
        for line in section.splitlines()[1:]:
            if not line.startswith("\t- "):
                break
            if line.startswith("\t- <"):
                listed.append(f"0x{int(line.split('<')[1].split('>')[0], 16):016x}")
    assert sorted(a for lst in rows["ownable_synchronizers"] for a in lst) == sorted(listed)
    assert text.count("Locked ownable synchronizers:") == rows.filter(pl.col("java_thread_id").is_not_null()).height
    lockers = rows.filter(pl.col("name").is_in(["kafka-log-flusher", "kafka-log-cleaner-thread-0"]))
    held = [a for lst in lockers["ownable_synchronizers"] for a in lst]
    waiting = lockers["waiting_on"].drop_nulls().to_list()
    assert len(held) <= 1
    if held and waiting:
        assert waiting == held  # the cleaner parks on the flusher's lock


def test_kill_3_dumps_in_stdout_log(run):
    rows = parse_dump(run.stdout)
    assert rows["dump_index"].unique().sort().to_list() == [0, 1]
    assert rows["dump_at"].null_count() == 0
    at = rows.group_by("dump_index").agg(pl.col("dump_at").first()).sort("dump_index")["dump_at"].to_list()
    assert at[0] < at[1]
    _check_dump_against_proc(run, rows)


def test_jfr_threads_agree_with_jstack(run):
    t, _ = ours(run.jfr)
    jt = t["jfr_threads"]
    dump = parse_dump(run.jstack).filter(pl.col("java_thread_id").is_not_null())
    joined = dump.join(jt, left_on="tid", right_on="os_tid", how="left")
    app = joined.filter(
        pl.col("name").str.starts_with("data-plane-kafka") | pl.col("name").str.starts_with("kafka-log")
    )
    assert app.height == 8  # 4 handlers, network thread, flusher, cleaner, logger
    assert app["java_thread_id"].to_list() == app["java_thread_id_right"].to_list()
    assert app["name"].to_list() == app["name_right"].to_list()


def test_truncated_recording_keeps_complete_chunks(run, tmp_path):
    data = run.jfr.read_bytes()
    full = Recording(data, [])
    last = full.chunks[-1].header
    cut = tmp_path / "cut.jfr"
    cut.write_bytes(data[: last.offset + last.size // 2])
    t_full, _ = ours(run.jfr)
    t_cut, ctx = ours(cut)
    errors = [(e.what, e.position, e.severity) for e in ctx.errors if e.severity != "info"]
    assert errors == [("truncated_chunk", last.offset, "data_loss")]
    assert ctx.bytes_skipped == last.size // 2
    for table in ("monitor_waits", "jvm_file_writes", "thread_samples"):
        want = t_full[table].filter(pl.col("position") < last.offset)
        assert t_cut[table].equals(want) if table in t_cut else want.height == 0


def test_clock_offset_shifts_instants_not_raw_ns(run):
    ctx = ParseContext(run.jfr, "x", "x", manifest=Manifest(clock_offsets_ms={"jfr": 1500.0}))
    from pipeline.ingest.jfr import JfrParser

    shifted = pl.concat([f for t, f in JfrParser().parse(ctx) if t == "monitor_waits"])
    base, _ = ours(run.jfr)
    base = base["monitor_waits"]
    assert shifted["start_ns"].equals(base["start_ns"])
    assert ((shifted["start_at"] - base["start_at"]).dt.total_microseconds() == 1_500_000).all()


def test_json_dump_maps_through_jfr_threads(run):
    if run.json_dump is None:
        pytest.skip("JSON thread dumps exist from JDK 21")
    ctxs: list = []
    rows = parse_dump(run.json_dump, ctx_out=ctxs)
    assert [e.what for e in ctxs[0].errors] == ["no_native_ids"]
    assert rows["tid"].null_count() == rows.height
    app = rows.filter(pl.col("name").str.starts_with("data-plane-kafka-request-handler-"))
    assert app.height == 4
    owners = app.filter(pl.col("locked").list.len() > 0)
    assert owners.height <= 1
    if owners.height:
        assert owners["locked"][0].to_list()[0].startswith("KafkaLockSim$Partition@")
    # Java ids agree with jstack's #N of the same run, and JFR maps them to the TIDs
    jstack = parse_dump(run.jstack).filter(pl.col("java_thread_id").is_not_null())
    t, _ = ours(run.jfr)
    jt = t["jfr_threads"].filter(pl.col("java_thread_id") > 0).unique("java_thread_id")
    mapped = app.join(jt, on="java_thread_id").select("name", "os_tid").sort("name")
    want = (
        jstack.filter(pl.col("name").is_in(app["name"].to_list()))
        .select("name", pl.col("tid").alias("os_tid"))
        .sort("name")
    )
    assert mapped.equals(want)
