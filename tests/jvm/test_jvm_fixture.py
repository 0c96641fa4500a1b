"""The committed JDK 17 run of fixtures/jvm/KafkaLockSim.java, checked without a JDK.

``kafka-lock-sim-jdk17.jfr-print.json`` holds what the JDK's ``jfr print --json`` said
about the recording when fixtures/jvm/jdk_runs.py made it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.ingest.jfr_format import Recording
from tests.jvm.jfr_reference import CORPUS, instant_ns, ours, span_ns

GENERATED = Path(__file__).resolve().parents[2] / "fixtures" / "jvm" / "generated"
JFR_FILE = GENERATED / "kafka-lock-sim-jdk17.jfr"
pytestmark = pytest.mark.skipif(not JFR_FILE.exists(), reason="generated fixtures absent")


def test_rows_equal_recorded_jfr_print():
    ref = json.loads((GENERATED / "kafka-lock-sim-jdk17.jfr-print.json").read_text())
    tables, ctx = ours(JFR_FILE)
    assert [e.what for e in ctx.errors] == ["recording"]
    want = sorted(
        (t, instant_ns(st), span_ns(du), tid, name, cls.replace("/", ".") if cls else None, path, nbytes, top)
        for t, st, du, tid, name, cls, path, nbytes, top in ref["rows"]
    )
    mw = tables["monitor_waits"].filter(pl.col("event_type") == "jdk.JavaMonitorEnter")
    fw = tables["jvm_file_writes"]
    cols = ("event_type", "start_ns", "duration_ns", "tid", "thread_name")
    got = sorted(
        [(*(r[c] for c in cols), r["monitor_class"], None, None, r["top_frames"][0]) for r in mw.iter_rows(named=True)]
        + [(*(r[c] for c in cols), None, r["path"], r["bytes"], r["top_frames"][0]) for r in fw.iter_rows(named=True)]
    )
    # Where jfr print has no stack (its pool entry was written in an earlier chunk), we
    # resolve it from that chunk's pool; everything else is equal.
    unresolved = [w for w in want if w[-1] is None]
    assert [g[:-1] for g in got] == [w[:-1] for w in want]
    assert [g for g, w in zip(got, want, strict=True) if w[-1] is not None and g != w] == []
    assert all(g[-1] for g in got)
    assert len(unresolved) < len(want) // 10
    assert len(Recording(JFR_FILE.read_bytes(), []).chunks) >= 2


def test_instants_are_microseconds_of_the_ns_values():
    tables, _ = ours(JFR_FILE)
    mw = tables["monitor_waits"]
    assert (mw["start_at"].dt.epoch("us") == mw["start_ns"] // 1000).all()
    assert (mw["end_at"].dt.epoch("us") == (mw["start_ns"] + mw["duration_ns"]) // 1000).all()
    assert mw["duration_ms"].to_list() == [d / 1e6 for d in mw["duration_ns"].to_list()]
    for _, rows in mw.group_by("event_type"):
        assert rows["position"].is_sorted()  # file order within each event type


def test_ingest_bundle_and_dump_commands(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in ("kafka-lock-sim-jdk17.jfr", "kafka-lock-sim-jdk17.jstack-l.txt", "kafka-lock-sim-jdk17.stdout.log"):
        shutil.copy(GENERATED / name, bundle / name)
    data = JFR_FILE.read_bytes()
    (bundle / "cut.jfr").write_bytes(data[: len(data) - 1000])
    legacy = CORPUS / "jfr" / "openjdk__jmc__9u0_jfr-v1.jfr"
    if legacy.exists():
        shutil.copy(legacy, bundle / "old.jfr")
    (bundle / "bundle.toml").write_text('timezone = "UTC"\n[clock_offsets_ms]\njfr = 2.0\n')
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["-q", "ingest", str(bundle), "-o", str(out)])
    assert r.exit_code == 1, r.output  # the cut and the old recordings are not ok
    con = duckdb.connect(str(out / "incident.duckdb"), read_only=True)
    status = dict(con.sql("select path, status from artifacts").fetchall())
    assert status["kafka-lock-sim-jdk17.jfr"] == "ok"
    assert status["kafka-lock-sim-jdk17.jstack-l.txt"] == "ok"
    assert status["kafka-lock-sim-jdk17.stdout.log"] == "ok"
    assert status["cut.jfr"] == "partial"
    if legacy.exists():
        assert status["old.jfr"] == "failed"
        msg = con.execute(
            "select e.message from ingest_errors e join artifacts a using (artifact_id) where a.path = 'old.jfr'"
        ).fetchall()
        assert msg[0][0].startswith("JFR format 1.0 ")
    n = con.execute(
        "select count(*) from monitor_waits m join artifacts a using (artifact_id) where a.path = 'kafka-lock-sim-jdk17.jfr'"
    ).fetchone()[0]
    assert n == ours(JFR_FILE)[0]["monitor_waits"].height
    # thread dumps and the recording name the same TIDs for the request handlers
    joined = con.execute(
        """select count(distinct t.tid) from jvm_threads t join jfr_threads j on j.os_tid = t.tid and j.name = t.name
           where t.name like 'data-plane-kafka-request-handler-%'"""
    ).fetchone()[0]
    assert joined == 4
    con.close()

    r = CliRunner().invoke(cli, ["dump", "jfr", str(JFR_FILE)])
    assert r.exit_code == 0 and "chunk 3 at" in r.output and "jdk.JavaMonitorEnter" in r.output
    r = CliRunner().invoke(cli, ["dump", "jfr", str(JFR_FILE), "--events", "jdk.FileForce", "--limit", "2"])
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 2 and lines[0]["type"] == "jdk.FileForce" and lines[0]["path"].endswith(".log")
    r = CliRunner().invoke(
        cli, ["dump", "threads", str(GENERATED / "kafka-lock-sim-jdk17.stdout.log"), "--format", "csv"]
    )
    assert r.exit_code == 0
    frame = pl.read_csv(r.stdout.encode())
    assert frame["dump_index"].unique().sort().to_list() == [0, 1]


def test_damaged_copies_never_raise(tmp_path):
    """Cut or scribbled-over copies: rows or error rows, never an exception."""
    import random

    from pipeline.ingest.jfr import JfrParser
    from pipeline.registry import ParseContext

    src = JFR_FILE.read_bytes()
    rnd = random.Random(7)
    outcomes = set()
    for i in range(24):
        b = bytearray(src)
        if i % 2:
            b = b[: rnd.randrange(len(b))]
        else:
            for _ in range(rnd.randrange(1, 20)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        p = tmp_path / f"damaged-{i}.jfr"
        p.write_bytes(bytes(b))
        ctx = ParseContext(p, p.name, "test")
        rows = sum(f.height for _, f in JfrParser().parse(ctx))
        problems = [e for e in ctx.errors if e.severity != "info"]
        outcomes.add((rows > 0, bool(problems)))
        if i % 2:  # every cut copy is reported
            assert problems, i
    assert (True, True) in outcomes  # complete chunks kept while the damage is reported


def test_fixed_width_integers(tmp_path):
    """The same recording re-encoded with fixed-width integers reads to the same rows."""
    from tests.jvm.jfr_transcode import transcode

    data = JFR_FILE.read_bytes()
    fixed = transcode(data)
    path = tmp_path / "fixed.jfr"
    path.write_bytes(fixed)
    rec = Recording(fixed, [], count_all=True)
    assert [c.header.compressed for c in rec.chunks] == [False, False, False]
    assert rec.event_type_names() == Recording(data, [], count_all=True).event_type_names()
    want, _ = ours(JFR_FILE)
    got, ctx = ours(path)
    assert [e.what for e in ctx.errors] == ["recording"]
    assert set(got) == set(want)
    for table in want:
        assert got[table].drop("position").equals(want[table].drop("position")), table
