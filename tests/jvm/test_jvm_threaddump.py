"""Thread dumps from real JVMs (shared corpus and the committed JDK run) → jvm_threads."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest.threaddump import ThreadDumpParser, nid_to_tid, norm_addr
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext, Probe, detect
from pipeline.runner import check_frame
from tests.jvm.jfr_reference import CORPUS

JSTACK = CORPUS / "jstack"
GENERATED = Path(__file__).resolve().parents[2] / "fixtures" / "jvm" / "generated"
needs_corpus = pytest.mark.skipif(not JSTACK.is_dir(), reason="shared corpus not present")


def parse_dump(path: Path, manifest: Manifest | None = None, ctx_out: list | None = None) -> pl.DataFrame:
    ctx = ParseContext(path, path.name, "test", manifest=manifest or Manifest())
    frames = [check_frame(ThreadDumpParser, t, f) for t, f in ThreadDumpParser().parse(ctx)]
    if ctx_out is not None:
        ctx_out.append(ctx)
    return pl.concat(frames) if frames else pl.DataFrame()


def row(df: pl.DataFrame, name: str, dump: int = 0) -> dict:
    rows = df.filter((pl.col("name") == name) & (pl.col("dump_index") == dump)).to_dicts()
    assert len(rows) == 1, (name, len(rows))
    return rows[0]


def test_nid_and_address_helpers():
    assert nid_to_tid("0x19ee") == 6638
    assert nid_to_tid("8851") == 8851
    assert nid_to_tid(None) is None
    assert norm_addr("0x69e8f1234") == "0x000000069e8f1234"


@needs_corpus
@pytest.mark.parametrize(
    ("name", "threads", "dumps"),
    [
        ("irockel__tda__carrier_stuck.log", 4, 1),
        ("irockel__tda__java11dump.log", 14, 1),
        ("irockel__tda__java21dump.log", 18, 1),
        ("irockel__tda__java8dump.log", 21, 1),
        ("irockel__tda__jdk11_long_running.log", 4, 2),
        ("irockel__tda__jstack_dump.log", 28, 1),
        ("irockel__tda__test.log", 260, 3),
        ("parttimenerd__jthreaddump__scenario-file-io_dump-0.txt", 41, 1),
        ("parttimenerd__jthreaddump__thread-pool.txt", 64, 1),
        ("parttimenerd__jthreaddump__thread-dump-jcmd.txt", 4, 1),
        ("irockel__tda__intellij_dump.json", 8, 1),
    ],
)
def test_corpus_thread_counts(name, threads, dumps):
    path = JSTACK / name
    assert ThreadDumpParser.detect(Probe.of(path))
    df = parse_dump(path)
    assert (df.height, df["dump_index"].n_unique()) == (threads, dumps)


@needs_corpus
def test_jdk8_dump_fields():
    df = parse_dump(JSTACK / "irockel__tda__java8dump.log")
    r = row(df, "Thread-2")
    assert (r["java_thread_id"], r["prio"], r["os_prio"], r["nid"], r["tid"]) == (20, 6, 0, "0x2a43", 0x2A43)
    assert (r["state"], r["state_detail"], r["header_state"], r["daemon"]) == (
        "TIMED_WAITING",
        "sleeping",
        "waiting on condition",
        False,
    )
    assert (r["cpu_ms"], r["elapsed_s"]) == (None, None)
    assert r["stack"] == [
        "java.lang.Thread.sleep(Native Method)",
        "com.pironet.tda.utils.MemoryStatusUpdater.run(StatusBar.java:124)",
        "java.lang.Thread.run(Thread.java:745)",
    ]
    t = row(df, "Timer-0")
    assert t["daemon"] is True
    assert t["waiting_on"] == "0x00000000d75b1e48"
    assert t["locked"] == ["0x00000000d75b1e48"]
    q = row(df, "TimerQueue")
    assert (q["state"], q["waiting_on"]) == ("WAITING", "0x00000000d7bf6bd0")  # parking to wait for
    assert df["dump_at"].unique().to_list() == [dt.datetime(2016, 7, 12, 14, 2, 38)]


@needs_corpus
def test_jdk25_decimal_nid_deadlock_and_cpu():
    df = parse_dump(JSTACK / "parttimenerd__jthreaddump__deadlock.txt")
    a = row(df, "DeadlockThread-A")
    assert (a["java_thread_id"], a["nid"], a["tid"], a["os_prio"]) == (30, "42499", 42499, 31)
    assert (a["cpu_ms"], a["elapsed_s"]) == (0.15, 0.31)
    assert (a["state"], a["waiting_to_lock"], a["locked"]) == ("BLOCKED", "0x000000052c830070", ["0x000000052c830078"])
    assert a["in_deadlock"] is True
    b = row(df, "DeadlockThread-B")
    assert (b["waiting_to_lock"], b["locked"]) == ("0x000000052c830078", ["0x000000052c830070"])
    assert df.filter(pl.col("in_deadlock"))["name"].sort().to_list() == ["DeadlockThread-A", "DeadlockThread-B"]


@needs_corpus
def test_ownable_synchronizers():
    df = parse_dump(JSTACK / "parttimenerd__jthreaddump__thread-pool.txt")
    r = row(df, "process reaper (pid 93601)")
    assert (r["java_thread_id"], r["tid"], r["daemon"], r["prio"]) == (32, 34307, True, 10)
    assert r["ownable_synchronizers"] == ["0x0000000503a139a0"]


@needs_corpus
def test_several_dumps_each_with_its_time():
    df = parse_dump(JSTACK / "irockel__tda__jdk11_long_running.log")
    got = df.select("dump_index", "dump_at", "name", "tid", "cpu_ms").rows()
    assert got == [
        (0, dt.datetime(2026, 1, 17, 10, 0), "C2 CompilerThread0", 0x10854, 55652.75),
        (0, dt.datetime(2026, 1, 17, 10, 0), "VM Periodic Task Thread", 0x10855, 450.0),
        (1, dt.datetime(2026, 1, 17, 10, 1), "C2 CompilerThread0", 0x10854, 55652.76),
        (1, dt.datetime(2026, 1, 17, 10, 1), "VM Periodic Task Thread", 0x10855, 451.0),
    ]


@needs_corpus
def test_jdk6_dump_format():
    df = parse_dump(JSTACK / "irockel__tda__test.log")
    r = row(df, "RMI TCP Connection(23)-127.0.1.1", dump=2)
    assert (r["java_thread_id"], r["state"], r["tid"]) == (3149, "RUNNABLE", None)
    assert r["stack"][0] == "java.net.SocketInputStream.socketRead0(Native Method)"


@needs_corpus
def test_timezone_and_clock_offset():
    path = JSTACK / "irockel__tda__java8dump.log"
    ctxs: list = []
    utc = parse_dump(path, ctx_out=ctxs)
    assert [e.what for e in ctxs[0].errors] == ["timezone_assumed"]
    warsaw = parse_dump(path, Manifest(timezone="Europe/Warsaw", clock_offsets_ms={"threaddump": 250.0}))
    assert warsaw["dump_at"][0] == dt.datetime(2016, 7, 12, 12, 2, 38, 250000)  # CEST = UTC+2
    assert warsaw["dump_local"][0] == utc["dump_local"][0] == "2016-07-12 14:02:38"


@needs_corpus
def test_json_thread_dump():
    ctxs: list = []
    df = parse_dump(JSTACK / "irockel__tda__intellij_dump.json", ctx_out=ctxs)
    r = row(df, "Finalizer")
    assert (r["java_thread_id"], r["tid"], r["nid"]) == (10, None, None)
    assert r["stack"][0] == "java.base/java.lang.Object.wait0(Native Method)"
    assert df["dump_at"].unique().to_list() == [dt.datetime(2026, 1, 25, 15, 46, 4, 439828)]
    assert [e.what for e in ctxs[0].errors] == ["no_native_ids"]


@needs_corpus
def test_utf16_file_reads_like_utf8(tmp_path):
    src = JSTACK / "irockel__tda__java21dump.log"
    for enc in ("utf-16", "utf-16-be"):
        p = tmp_path / f"dump-{enc}.txt"
        data = src.read_text(encoding="utf-8").encode(enc)
        p.write_bytes(data if enc == "utf-16" else b"\xfe\xff" + data)
        assert ThreadDumpParser.detect(Probe.of(p))
        assert parse_dump(p).equals(parse_dump(src))


def test_not_a_dump_is_an_error(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("hello\nworld\n")
    ctxs: list = []
    assert parse_dump(p, ctx_out=ctxs).height == 0
    assert [(e.what, e.severity) for e in ctxs[0].errors] == [("no_dump", "error")]


@pytest.mark.skipif(not GENERATED.is_dir(), reason="generated fixtures absent")
def test_committed_jdk17_run_maps_to_proc_tasks():
    """jstack -l and two kill -3 dumps of fixtures/jvm/KafkaLockSim.java, with /proc of that run."""
    tasks = {
        int(k): v for k, v in json.loads((GENERATED / "kafka-lock-sim-jdk17.tasks.json").read_text())["tasks"].items()
    }
    for name, dumps in (("kafka-lock-sim-jdk17.jstack-l.txt", 1), ("kafka-lock-sim-jdk17.stdout.log", 2)):
        df = parse_dump(GENERATED / name)
        assert df["dump_index"].n_unique() == dumps
        assert df["tid"].null_count() == 0
        for r in df.iter_rows(named=True):
            assert r["tid"] in tasks
            # main keeps the launcher's comm; JDK 17 prints the JFR sampler with no name
            want = {"main": "java", "": "JFR Thread Samp"}.get(r["name"], r["name"][:15])
            assert tasks[r["tid"]] == want, r
        handlers = df.filter(pl.col("name").str.starts_with("data-plane-kafka-request-handler-"))
        assert handlers.height == 4 * dumps


@pytest.mark.skipif(not GENERATED.is_dir(), reason="generated fixtures absent")
def test_quoted_log_lines_are_not_threads(tmp_path):
    src = GENERATED / "kafka-lock-sim-jdk17.stdout.log"
    lines = src.read_text().splitlines(keepends=True)
    noisy = []
    for line in lines:
        noisy.append(line)
        if line.startswith("JNI global refs"):
            noisy.append('"GET /metrics HTTP/1.1" 200 1234 "-" "prometheus/2.45"\n')
            noisy.append('"quoted" log message\n')
    p = tmp_path / "noisy.log"
    p.write_text("".join(noisy))
    assert parse_dump(p).drop("position").equals(parse_dump(src).drop("position"))


def test_prose_or_code_mentioning_a_dump_is_not_a_dump(tmp_path):
    from pipeline.ingest.threaddump import ThreadDumpParser
    from pipeline.registry import Probe

    for text in (
        'The marker ("Full thread dump") starts every jstack output.\n',
        'out.write("Full thread dump OpenJDK 64-Bit Server VM (17.0.15+6 mixed mode):\\n")\n',
        '{"not": "a dump", "text": "threadDump"}\n',
    ):
        f = tmp_path / "x.txt"
        f.write_text(text)
        assert not ThreadDumpParser.detect(Probe.of(f))
    f.write_text('{\n  "threadDump": {"processId": "1", "threadContainers": []}\n}\n')
    assert ThreadDumpParser.detect(Probe.of(f))


@pytest.mark.skipif(not GENERATED.is_dir(), reason="generated fixtures absent")
@pytest.mark.parametrize("gzipped", [False, True])
def test_kill_3_dumps_deep_in_a_broker_log_are_found(tmp_path, gzipped):
    """A broker's stdout log whose first kill -3 dump comes after megabytes of log lines."""
    src = GENERATED / "kafka-lock-sim-jdk17.stdout.log"
    noise = "".join(
        f"[2026-11-20 17:{i // 60 % 60:02d}:{i % 60:02d},{i % 1000:03d}] INFO [ReplicaManager broker=1] "
        f"Incremental fetch session {i} for partition orders-{i % 12} (kafka.server.ReplicaManager)\n"
        for i in range(40_000)
    )
    text = noise + src.read_text() + noise[:5000]
    p = tmp_path / ("kafkaServer.out.gz" if gzipped else "kafkaServer.out")
    p.write_bytes(gzip.compress(text.encode()) if gzipped else text.encode())
    probe = Probe.of(p)
    assert "Full thread dump" not in probe.head.decode()
    assert not ThreadDumpParser.detect(probe)  # not by its head: by a look further in
    assert detect(probe) is ThreadDumpParser
    got, want = parse_dump(p), parse_dump(src)
    assert got["dump_index"].n_unique() == 2
    assert got.drop("position").equals(want.drop("position"))
    shifted = noise.count("\n")
    assert got["position"].to_list() == [n + shifted for n in want["position"].to_list()]


def test_a_log_merely_mentioning_a_dump_deep_in_is_not_claimed(tmp_path):
    p = tmp_path / "server.log"
    lines = [f"[2026-11-20 17:58:{i % 60:02d},000] INFO line {i} (kafka.server.KafkaServer)\n" for i in range(5000)]
    lines.insert(4000, "Full thread dump requested by the operator, see the next file\n")
    p.write_text("".join(lines))
    assert detect(Probe.of(p)) is None


@pytest.mark.skipif(not GENERATED.is_dir(), reason="generated fixtures absent")
def test_a_log_of_many_dumps_streams_in_batches_of_whole_dumps(tmp_path, monkeypatch):
    from pipeline.ingest import threaddump

    src = GENERATED / "kafka-lock-sim-jdk17.stdout.log"
    p = tmp_path / "kafkaServer.out"
    p.write_text(src.read_text() * 5)  # ten dumps
    whole = parse_dump(p)
    monkeypatch.setattr(threaddump, "BATCH_ROWS", 1)
    ctx = ParseContext(p, p.name, "test", manifest=Manifest())
    frames = [f for _, f in ThreadDumpParser().parse(ctx)]
    assert len(frames) == 10 and all(f["dump_index"].n_unique() == 1 for f in frames)
    assert pl.concat(frames).equals(whole)
    assert whole["dump_index"].unique().sort().to_list() == list(range(10))
    assert [e.what for e in ctx.errors] == ["timezone_assumed"]  # once, not per frame
