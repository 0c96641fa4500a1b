"""The collection kit's bpftrace output, captured here against real writes, ingests cleanly.

fixtures/ebpf/real/ holds one run of fixtures/ebpf/capture.sh: collect/bpftrace/*.bt
traced fixtures/ebpf/writer.py (four appender threads, each fdatasync()ing every fifth
batch, plus a checkpoint writer) on a loop-mounted ext4 with fast commits.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import polars as pl
import pytest
from click.testing import CliRunner
from ebpf_testlib import REAL, REPO, at, parse_file

import pipeline.ingest.ebpf as ebpf
from pipeline.bundle import open_bundle
from pipeline.cli import cli
from pipeline.progress import Progress
from pipeline.registry import load_families
from pipeline.runner import ingest_bundle
from pipeline.store import Store

SIZES = [498, 798, 14410, 1138, 2009, 531]  # writer.py's batch sizes, in order


def writer_threads() -> dict[int, str]:
    out = {}
    for line in (REAL / "writer_threads.txt").read_text().splitlines():
        tid, part = line.split()
        out[int(tid)] = part
    return out


LONG = "clickstream-enriched-with-geo-and-device-data-eu-west-1-prods-17"  # 64 bytes


def test_fs_writes_capture():
    p = parse_file(REAL / "fs_writes.txt")
    assert {(e.position, e.what) for e in p.errs("info")} == {(1, "banner"), (2, "banner"), (3, "anchor"), (4, "header"), (81, "anchor")}  # fmt: skip
    # bpftrace prints 63 bytes of LONG: "...-prods-1" must not pass for partition 1
    assert [(e.position, e.severity, e.what) for e in p.errs("error", "data_loss")] == [(7, "error", "truncated_path")]
    assert p.errs("error")[0].message.startswith("14 rows (lines 7..")
    first = p.fs.row(0, named=True)
    assert first == {
        "position": 5,
        "operation": "write",
        # anchor: monotonic 2724662566548 ns = 01:02:14.700820; the row starts 640.204301 ms later
        "start_at": at("2026-11-26 01:02:15.341024"),
        "end_at": at("2026-11-26 01:02:15.341040"),
        "latency_ms": 0.016075,
        "tid": 3923,
        "pid": 3922,
        "comm": "data-plane-kafk",
        "bytes": 498,
        "file_offset": 0,
        "path": "orders-0/00000000000001234567.log",
        "topic": "orders",
        "partition": 0,
        "segment": "00000000000001234567.log",
        "fs": "ext4",
        "source_format": "kit",
        "raw_start": "2725302770849",
        "raw_end": "2725302786924",
        "clock": "monotonic",
    }
    threads = writer_threads()
    assert len(threads) == 5
    # every appender thread's writes are traced, on its own partition, with the writer's tid
    for tid, part in threads.items():
        mine = p.fs.filter((pl.col("tid") == tid) & (pl.col("operation") == "write")).sort("start_at")
        assert mine.height == 12
        assert set(mine["path"]) == {f"{part[:63]}/00000000000001234567.log"}
        topic, _, partition = part.rpartition("-")
        want = (None, None) if part == LONG else (topic, int(partition))
        assert set(zip(mine["topic"], mine["partition"], strict=True)) == {want}
        sizes = [SIZES[i % len(SIZES)] for i in range(mine.height)]
        assert mine["bytes"].to_list() == sizes
        # each write lands where the previous one ended: offsets are the running sum of sizes
        assert mine["file_offset"].to_list() == [sum(sizes[:i]) for i in range(len(sizes))]
        fsyncs = p.fs.filter((pl.col("tid") == tid) & (pl.col("operation") == "fsync"))
        assert fsyncs.height == 2 and fsyncs["bytes"].null_count() == 2
    assert p.fs.filter(pl.col("topic") == "pay-ments-eu")["partition"].unique().sort().to_list() == [3, 12]
    other = p.fs.filter(pl.col("topic").is_null() & ~pl.col("path").str.starts_with(LONG[:63]))
    assert set(other["path"]) == {"kafka-logs/recovery-point-offset-checkpoint"}
    assert other.group_by("operation").len().sort("operation").rows() == [("fsync", 3), ("write", 3)]
    assert (p.fs["end_at"] >= p.fs["start_at"]).all()


def test_journal_capture():
    p = parse_file(REAL / "journal.txt")
    assert p.errs("error", "data_loss") == []
    assert p.calls.group_by("func").len().sort("func").rows() == [
        ("ext4_fc_commit", 13),
        ("jbd2_journal_commit_transaction", 2),
    ]
    jbd2 = p.calls.filter(pl.col("func") == "jbd2_journal_commit_transaction").row(0, named=True)
    assert (jbd2["start_at"], jbd2["end_at"], jbd2["latency_ms"], jbd2["tid"], jbd2["comm"], jbd2["detail"]) == (
        at("2026-11-26 01:02:15.643523"),
        at("2026-11-26 01:02:15.647634"),
        4.110833,
        3690,
        "jbd2/loop0-8",
        "dev=7340032 transaction=3 sync_commit=0",
    )
    # fast commits run on the fsync()ing threads themselves
    fc_tids = set(p.calls.filter(pl.col("func") == "ext4_fc_commit")["tid"])
    assert set(writer_threads()) <= fc_tids


def test_offcpu_capture_and_writes_line_up():
    off = parse_file(REAL / "offcpu_write.txt")
    assert off.errs("error", "data_loss") == []
    assert off.calls.height == 16
    assert set(off.calls["func"]) == {"offcpu_write"}
    assert off.calls["stack"].null_count() == 0
    first = off.calls.row(0, named=True)
    assert first["stack"][:3] == ["__schedule", "schedule", "io_schedule"]
    assert "ext4_sync_file" in first["stack"]
    # fsyncs wait inside the fast commit they run themselves
    assert off.calls.filter(pl.col("stack").list.contains("ext4_fc_commit")).height >= 1
    # some writers wait for the running fast commit: the seed's jbd2_fc_begin_commit path
    waits = off.calls.filter(pl.col("stack").list.contains("jbd2_fc_begin_commit"))
    assert waits.height >= 1
    # every off-CPU spell lies inside a traced write or fsync of the same thread
    fs = parse_file(REAL / "fs_writes.txt").fs
    joined = off.calls.join(fs, on="tid", suffix="_fs").filter(
        (pl.col("start_at") >= pl.col("start_at_fs")) & (pl.col("end_at") <= pl.col("end_at_fs"))
    )
    assert joined["position"].n_unique() == off.calls.height


def test_kit_bundle_through_the_runner(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(REAL, bundle / "ebpf")
    (bundle / "bundle.toml").write_text('timezone = "Europe/Warsaw"\n[clock_offsets_ms]\nebpf = 1.5\n')
    out = tmp_path / "out"
    load_families()  # every family's tables exist before the store is opened
    with Store(out) as store:
        summary = ingest_bundle(open_bundle(bundle, out), store, progress=Progress(quiet=True))
        got = {r.path: (r.kind, r.status, r.rows) for r in summary.results}
        assert got == {
            "bundle.toml": ("manifest", "ok", 0),
            "ebpf/fs_writes.txt": ("ebpf", "partial", 76),  # the 64-byte directory name
            "ebpf/journal.txt": ("ebpf", "ok", 15),
            "ebpf/monitor_threads.txt": (None, "skipped", 0),
            "ebpf/monitor_waits.txt": ("ebpf", "ok", 7),
            "ebpf/offcpu_write.txt": ("ebpf", "ok", 16),
            "ebpf/writer_threads.txt": (None, "skipped", 0),
        }
        first = store.frame("select min(start_at) as s from fs_writes").row(0)[0]
        assert first == at("2026-11-26 01:02:15.342524")  # +1.5 ms offset
        problems = store.frame("select what from ingest_errors where severity <> 'info'")["what"].to_list()
        assert problems == ["truncated_path"]


def test_dump_command_prints_seed_layout():
    result = CliRunner().invoke(cli, ["dump", "ebpf", str(REAL / "journal.txt")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == [
        "01:02:15.342  01:02:15.346  4 ms     ext4_fc_commit  tid 3928",
        "01:02:15.643  01:02:15.647  4 ms     jbd2_journal_commit_transaction  tid 3690",
    ]
    assert len(lines) == 15
    result = CliRunner().invoke(cli, ["dump", "ebpf", str(REAL / "fs_writes.txt"), "--show-tz", "Europe/Warsaw"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "02:02:15.341  02:02:15.341  0 ms     3923  498    0          orders-0/00000000000001234567.log"
    )


needs_root_bpftrace = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("bpftrace") is None or shutil.which("mkfs.ext4") is None,
    reason="needs root, bpftrace and mkfs.ext4",
)


@pytest.mark.slow
@pytest.mark.needs_tool
@needs_root_bpftrace
def test_live_capture_ingests_cleanly(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), SECONDS_TO_RUN="0.6", PROGRAMS="fs_writes journal")
    run = subprocess.run(
        [str(REPO / "fixtures" / "ebpf" / "capture.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-2000:]
    parts = dict(x.split() for x in (tmp_path / "writer_threads.txt").read_text().splitlines())
    p = parse_file(tmp_path / "fs_writes.txt")
    assert [e.what for e in p.errs("error", "data_loss")] == ["truncated_path"]  # writer.py's 64-byte name
    writes = p.fs.filter((pl.col("operation") == "write") & pl.col("segment").is_not_null())
    assert set(writes["tid"]) == {int(tid) for tid, part in parts.items() if len(part) <= 63}
    assert writes["start_at"].null_count() == 0
    j = parse_file(tmp_path / "journal.txt")
    assert j.errs("error", "data_loss") == []
    assert "ext4_fc_commit" in set(j.calls["func"])


KPROBES_OUTPUT = (  # journal_kprobes.bt's printf formats; it needs kprobes, which this machine lacks
    "Attaching 8 probes...\n"
    "# kforensics bpftrace journal_kprobes v1 min_us=1000\n"
    "# anchor nsecs=1000000000 wall=2026-11-20T19:35:24.000000+0000\n"
    "# columns\tevent\tstart_ns\tend_ns\ttid\tpid\tcomm\tdev\tdetail\n"
    "jbd2_journal_commit_transaction\t1503000000\t1680000000\t611\t611\tjbd2/sda1-8\t-\t-\n"
    "ext4_dirty_inode\t1507000000\t1648000000\t4462\t4400\tdata-plane-kafk\t-\t-\n"
    "jbd2_fc_begin_commit\t1508000000\t1525000000\t4484\t4400\tdata-plane-kafk\t-\tret=0\n"
    "# anchor nsecs=2000000000 wall=2026-11-20T19:35:25.000000+0000\n"
)


def test_kprobes_program_output(tmp_path):
    path = tmp_path / "journal_kprobes.txt"
    path.write_text(KPROBES_OUTPUT)
    p = parse_file(path)
    assert p.errs("error", "data_loss") == []
    assert p.calls.select("func", "start_at", "end_at", "latency_ms", "tid", "pid", "detail", "stack").rows() == [
        ("jbd2_journal_commit_transaction", at("2026-11-20 19:35:24.503"), at("2026-11-20 19:35:24.680"), 177.0, 611, 611, None, None),
        ("ext4_dirty_inode", at("2026-11-20 19:35:24.507"), at("2026-11-20 19:35:24.648"), 141.0, 4462, 4400, None, None),
        ("jbd2_fc_begin_commit", at("2026-11-20 19:35:24.508"), at("2026-11-20 19:35:24.525"), 17.0, 4484, 4400, "ret=0", None),
    ]  # fmt: skip


@pytest.mark.needs_tool
@needs_root_bpftrace
@pytest.mark.parametrize("program", ["journal_kprobes"])
def test_kprobe_program_compiles(tmp_path, program):
    # It cannot attach here (no kprobes), but it must compile to BPF for kernels that have them.
    elf = tmp_path / f"{program}.elf"
    run = subprocess.run(
        ["bpftrace", "--emit-elf", str(elf), str(REPO / "collect" / "bpftrace" / f"{program}.bt"), "1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert elf.read_bytes()[:4] == b"\x7fELF"


def test_monitor_waits_capture():
    p = parse_file(REAL / "monitor_waits.txt")
    assert p.errs("error", "data_loss") == []
    threads = {}
    for line in (REAL / "monitor_threads.txt").read_text().splitlines():
        tid, name = line.split()
        threads[int(tid)] = name
    assert p.calls.height == 7
    assert set(p.calls["func"]) == {"monitor_contended_enter"}
    assert dict(zip(p.calls["tid"], p.calls["comm"], strict=True)) == threads
    first = p.calls.row(0, named=True)
    assert (first["start_at"], first["end_at"], first["latency_ms"], first["detail"]) == (
        at("2026-11-26 00:41:59.205349"),
        at("2026-11-26 00:41:59.295701"),
        90.351976,
        "monitor=0x7f8c980015a0 class=java/lang/Object",
    )
    # each waits while the other sleeps 30 ms inside the monitor, and they take turns
    assert p.calls["latency_ms"].min() > 30
    turns = p.calls.sort("start_at")["tid"].to_list()
    assert all(a != b for a, b in zip(turns, turns[1:], strict=False))


@pytest.mark.slow
@pytest.mark.needs_tool
@pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK")
@needs_root_bpftrace
def test_live_monitor_capture(tmp_path):
    run = subprocess.run(
        [str(REPO / "fixtures" / "ebpf" / "capture_monitor.sh")],
        env=dict(os.environ, OUT=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    p = parse_file(tmp_path / "monitor_waits.txt")
    assert p.errs("error", "data_loss") == []
    threads = {int(x.split()[0]) for x in (tmp_path / "monitor_threads.txt").read_text().splitlines()}
    assert p.calls.height >= 3
    assert set(p.calls["tid"]) == threads


def test_xfs_capture():
    real = REAL.parent / "real_xfs"
    writes = parse_file(real / "fs_writes.txt")
    log = parse_file(real / "xfs_log.txt")
    assert [e.what for e in writes.errs("error", "data_loss")] == ["truncated_path"]
    assert log.errs("error", "data_loss") == []
    assert set(writes.fs["fs"]) == {"xfs"}
    assert writes.fs.filter(pl.col("topic").is_not_null())["partition"].unique().sort().to_list() == [0, 1, 3, 12]
    assert log.calls.height == 10
    assert set(log.calls["func"]) == {"xfs_log_iclog_write"}
    first = log.calls.row(0, named=True)
    assert (first["start_at"], first["latency_ms"], first["comm"], first["detail"]) == (
        at("2026-11-26 01:02:22.101005"),
        1.016927,
        "python",
        "dev=7340032 lsn=4294967298",
    )
    # each log buffer is submitted from inside an fsync() of the thread named on the row
    fsyncs = writes.fs.filter(pl.col("operation") == "fsync")
    inside = log.calls.join(fsyncs, on="tid", suffix="_fs").filter(
        (pl.col("start_at") >= pl.col("start_at_fs")) & (pl.col("start_at") <= pl.col("end_at_fs"))
    )
    assert inside["position"].n_unique() == log.calls.height


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("position")


def test_bulk_and_line_by_line_reading_agree(tmp_path, monkeypatch):
    text = (REAL / "fs_writes.txt").read_text()
    lines = text.splitlines()
    # a second run appended, with its own anchor; odd rows inside it take the line-by-line path
    second = [
        "# kforensics bpftrace fs_writes v1 dev=0 min_us=0",
        "# anchor nsecs=1000 wall=2026-11-27T00:00:00.000000+0000",
        "# columns\tevent\tstart_ns\tend_ns\ttid\tpid\tcomm\tbytes\tfile_offset\tdev\tfs\tdir_len\tpath",
        "write\t2001000\t2002000\t7\t7\tjava\t-28\t0\t1\text4\t8\torders-0/00000000000000000000.log",
        "write\t3001000\t3004000\t7\t7\tjava\t10\t0\t1\text4\t8\torders-0/odd\tname.log",
        "write\t4001000\t4001500\t7\t7\tjava\t10\t10\t1\t\t8\torders-0/00000000000000000000.log",
        "write\t5001000\t5001500\t7\t7\tjava\t10\t20\t1\text4\t9\torders-0/00000000000000000000.log",
        "write\tnot-a-number",
    ]
    path = tmp_path / "two_runs.txt"
    path.write_text("\n".join(lines + second) + "\n")
    monkeypatch.setattr(ebpf, "CHUNK_ROWS", 7)
    bulk = parse_file(path)
    monkeypatch.setattr(ebpf, "KIT_FS_COLUMNS", ["not", "these"])
    one_by_one = parse_file(path)
    assert _sorted(bulk.fs).equals(_sorted(one_by_one.fs))
    assert [(e.position, e.what) for e in bulk.errs("error")] == [(len(lines) + 8, "bad_row"), (7, "truncated_path")]
    assert bulk.errs("error")[1].message.startswith(f"15 rows (lines 7..{len(lines) + 7})")
    assert [(e.position, e.what) for e in one_by_one.errs("error")] == [
        (len(lines) + 8, "bad_row"),
        (7, "truncated_path"),
    ]
    assert one_by_one.errs("error")[1].message == bulk.errs("error")[1].message
    assert [(e.position, e.what) for e in bulk.errs("info") if e.what == "failed_call"] == [
        (len(lines) + 4, "failed_call")
    ]
    tail = _sorted(bulk.fs).tail(4)
    assert tail.select("start_at", "bytes", "path", "fs", "partition").rows() == [
        (at("2026-11-27 00:00:00.002000"), None, "orders-0/00000000000000000000.log", "ext4", 0),
        (at("2026-11-27 00:00:00.003000"), 10, "orders-0/odd\tname.log", "ext4", None),
        (at("2026-11-27 00:00:00.004000"), 10, "orders-0/00000000000000000000.log", None, 0),
        (at("2026-11-27 00:00:00.005000"), 10, "orders-0/00000000000000000000.log", "ext4", None),  # cut: 9 > 8
    ]
