"""Each log format parses to exact rows; noise becomes error rows, never a crash.

Seed lines are quoted from the seed write-up. Lines of tools whose output has no sample in
the corpus (libbpf-tools fsslower, funcslower -T/-t/-a) are built with the tools' own
printf formats (libbpf-tools/fsslower.c, tools/funcslower.py at iovisor/bcc 6d0a964).
"""

from __future__ import annotations

import gzip
import json

import pytest
from ebpf_testlib import at, parse_file, parse_text

from pipeline.ingest.ebpf import EbpfLogParser
from pipeline.registry import Probe

SEED_WRITES = """\
17:58:00.643  17:58:00.769  126 ms   4462  498    167428091  topicF-6/00000000000966764382.log
17:58:00.770  17:58:00.770  0 ms     4484  798    167451825  topicF-6/00000000000966764382.log
17:58:00.775  17:58:00.775  0 ms     4499  14410  167437415  topicF-6/00000000000966764382.log
17:58:00.776  17:58:00.776  0 ms     4467  1138   167436277  topicF-6/00000000000966764382.log
"""

SEED_CALLS = """\
19:35:24.503  19:35:24.680  176 ms   jbd2_journal_commit_transaction
19:35:24.507  19:35:24.648  141 ms   ext4_dirty_inode
19:48:39.475  19:48:40.808  1332 ms  jbd2_journal_commit_transaction
19:48:39.477  19:48:40.757  1280 ms  ext4_dirty_inode
"""

DATE = 'date = "2023-08-01"\n'


def test_seed_write_lines(tmp_path):
    p = parse_text(tmp_path, SEED_WRITES, DATE)
    assert p.calls.height == 0
    assert p.fs.row(0, named=True) == {
        "position": 1,
        "operation": "write",
        "start_at": at("2023-08-01 17:58:00.643"),
        "end_at": at("2023-08-01 17:58:00.769"),
        "latency_ms": 126.0,
        "tid": 4462,
        "pid": None,
        "comm": None,
        "bytes": 498,
        "file_offset": 167428091,
        "path": "topicF-6/00000000000966764382.log",
        "topic": "topicF",
        "partition": 6,
        "segment": "00000000000966764382.log",
        "fs": "ext4",
        "source_format": "seed_write",
        "raw_start": "17:58:00.643",
        "raw_end": "17:58:00.769",
        "clock": "time_of_day",
    }
    assert p.fs["tid"].to_list() == [4462, 4484, 4499, 4467]
    assert p.fs["bytes"].to_list() == [498, 798, 14410, 1138]
    assert p.fs["latency_ms"].to_list() == [126.0, 0.0, 0.0, 0.0]
    assert p.errs("error", "data_loss") == []


def test_seed_call_lines(tmp_path):
    p = parse_text(tmp_path, SEED_CALLS, DATE)
    assert p.fs.height == 0
    assert p.calls.select("position", "func", "start_at", "end_at", "latency_ms", "tid").rows() == [
        (
            1,
            "jbd2_journal_commit_transaction",
            at("2023-08-01 19:35:24.503"),
            at("2023-08-01 19:35:24.680"),
            176.0,
            None,
        ),
        (2, "ext4_dirty_inode", at("2023-08-01 19:35:24.507"), at("2023-08-01 19:35:24.648"), 141.0, None),
        (
            3,
            "jbd2_journal_commit_transaction",
            at("2023-08-01 19:48:39.475"),
            at("2023-08-01 19:48:40.808"),
            1332.0,
            None,
        ),
        (4, "ext4_dirty_inode", at("2023-08-01 19:48:39.477"), at("2023-08-01 19:48:40.757"), 1280.0, None),
    ]
    assert set(p.calls["source_format"]) == {"seed_call"}


def test_seed_lines_of_any_function_and_mixed(tmp_path):
    text = "19:35:24.503  19:35:24.680  17 ms   jbd2_fc_begin_commit\n" + SEED_WRITES.splitlines()[0] + "\n"
    p = parse_text(tmp_path, text, DATE)
    assert p.calls["func"].to_list() == ["jbd2_fc_begin_commit"]
    assert p.fs["position"].to_list() == [2]


LIBBPF_TEXT = """\
Tracing ext4 operations slower than 10 ms... Hit Ctrl-C to end.
TIME     COMM             PID     T BYTES   OFF_KB   LAT(ms) FILENAME
23:59:59 data-plane-kafk  4401    W 498     163503    126.04 00000000000966764382.log
00:00:00 data-plane-kafk  4401    F LL_MAX  0           3.51 00000000000966764382.log
00:00:01 C2 CompilerThre  4401    R 4096    8          10.50 my file.txt
lost 3 events on CPU #1
"""


def test_libbpf_fsslower_text(tmp_path):
    p = parse_text(tmp_path, LIBBPF_TEXT, 'date = "2026-11-19"\ntimezone = "Europe/Warsaw"\n')
    rows = p.fs.select(
        "position", "operation", "start_at", "end_at", "latency_ms", "tid", "pid", "comm", "bytes", "file_offset"
    ).rows()
    assert rows == [
        (3, "write", at("2026-11-19 22:59:58.873960"), at("2026-11-19 22:59:59"), 126.04, None, 4401, "data-plane-kafk", 498, 163503 * 1024),
        (4, "fsync", at("2026-11-19 22:59:59.996490"), at("2026-11-19 23:00:00"), 3.51, None, 4401, "data-plane-kafk", None, 0),
        (5, "read", at("2026-11-19 23:00:00.989500"), at("2026-11-19 23:00:01"), 10.5, None, 4401, "C2 CompilerThre", 4096, 8192),
    ]  # fmt: skip
    assert p.fs["path"].to_list() == ["00000000000966764382.log", "00000000000966764382.log", "my file.txt"]
    assert p.fs["topic"].to_list() == [None, None, None]  # a bare file name has no partition directory
    assert set(p.fs["fs"]) == {"ext4"}
    assert p.fs["raw_end"].to_list() == ["23:59:59", "00:00:00", "00:00:01"]
    loss = p.errs("data_loss")
    assert [(e.position, e.what) for e in loss] == [(6, "lost_events")]
    assert p.errs("error") == []


def test_libbpf_fsslower_csv(tmp_path):
    text = (
        "ENDTIME_ns,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE\n"
        "5000123456789,data-plane-kafk,4401,W,498,167428091,126040,00000000000966764382.log\n"
        "5000223456789,data-plane-kafk,4401,F,LL_MAX,0,3512,00000000000966764382.log\n"
    )
    p = parse_text(tmp_path, text, "boot_time_ns = 1763600000000000000\n")
    assert p.fs.select("position", "operation", "start_at", "end_at", "latency_ms", "pid", "bytes", "file_offset").rows() == [
        (2, "write", at("2025-11-20 02:16:39.997416"), at("2025-11-20 02:16:40.123456"), 126.04, 4401, 498, 167428091),
        (3, "fsync", at("2025-11-20 02:16:40.219944"), at("2025-11-20 02:16:40.223456"), 3.512, 4401, None, 0),
    ]  # fmt: skip
    assert set(p.fs["clock"]) == {"monotonic"}
    assert p.fs["raw_end"].to_list() == ["5000123456789", "5000223456789"]


def test_csv_row_without_header_is_an_error(tmp_path):
    p = parse_text(tmp_path, "127200712278,bash,17225,R,128,0,14329,cksum\n")
    assert p.fs.height == 0
    assert [(e.position, e.severity, e.what) for e in p.errors] == [(1, "error", "bad_row")]


FUNCSLOWER_T = (  # rows end with a space: "%s %s" % (function, args) with no args
    "Tracing function calls slower than 100 ms... Ctrl+C to quit.\n"
    "TIME       COMM           PID    LAT(ms)             RVAL FUNC\n"
    "19:35:24   jbd2/sda1-8    611     176.42                0 jbd2_journal_commit_transaction \n"
    "19:35:24   data-plane-kaf 4401    141.07                0 ext4_dirty_inode \n"
)


def test_funcslower_with_time_of_day(tmp_path):
    p = parse_text(tmp_path, FUNCSLOWER_T, DATE)
    assert p.calls.select(
        "position", "func", "start_at", "end_at", "latency_ms", "tid", "pid", "comm", "detail", "clock"
    ).rows() == [
        (3, "jbd2_journal_commit_transaction", at("2023-08-01 19:35:23.823580"), at("2023-08-01 19:35:24"), 176.42, None, 611, "jbd2/sda1-8", "rval=0", "time_of_day"),
        (4, "ext4_dirty_inode", at("2023-08-01 19:35:23.858930"), at("2023-08-01 19:35:24"), 141.07, None, 4401, "data-plane-kaf", "rval=0", "time_of_day"),
    ]  # fmt: skip
    assert p.errs("error") == []


FUNCSLOWER_t_a = """\
Tracing function calls slower than 10 us... Ctrl+C to quit.
TIME       COMM           PID    LAT(us)             RVAL FUNC ARGS
0.000000   java           4401   1500.25 ffffffffffffffe4 ext4_dirty_inode 0xffff8881 0x0
    ext4_dirty_inode+0x0
    __mark_inode_dirty+0x1a0
1234.567890 java           4401     20.50                0 ext4_dirty_inode 0xffff8881 0x0
"""


def test_funcslower_relative_timestamps_args_and_stacks(tmp_path):
    p = parse_text(tmp_path, FUNCSLOWER_t_a, DATE)
    assert p.calls.select("position", "func", "start_at", "latency_ms", "pid", "detail", "stack", "raw_start", "clock").rows() == [
        (3, "ext4_dirty_inode", None, 1.50025, 4401, "rval=ffffffffffffffe4 args=0xffff8881 0x0", ["ext4_dirty_inode", "__mark_inode_dirty"], "0.000000", "relative"),
        (6, "ext4_dirty_inode", None, 0.0205, 4401, "rval=0 args=0xffff8881 0x0", None, "1234.567890", "relative"),
    ]  # fmt: skip
    unanchored = p.errs("error")
    assert [(e.position, e.what) for e in unanchored] == [(3, "unanchored")]
    assert unanchored[0].message.startswith("2 rows (lines 3..6)")


def test_jsonl_events(tmp_path):
    lines = [
        {"anchor": {"nsecs": 1_000_000_000, "wall": "2026-11-20T10:00:00.000000+0100"}},
        {"event": "write", "start_ns": 2_000_000_000, "end_ns": 2_126_500_000, "tid": 4462, "pid": 4400,
         "comm": "data-plane-kafk", "bytes": 498, "file_offset": 167428091,
         "path": "/data/kafka/orders-eu-1/00000000000000000042.log", "fs": "xfs"},
        {"event": "jbd2_journal_commit_transaction", "start_epoch_ns": 1_763_632_801_000_000_000, "latency_us": 1500,
         "tid": 611, "comm": "jbd2/sda1-8"},
        {"event": "ext4_dirty_inode", "start": "2026-11-20T09:00:02.5", "end": "2026-11-20T09:00:02.75", "tid": 4462,
         "stack": ["a", "b"]},
        {"event": "write"},
    ]  # fmt: skip
    text = "\n".join(json.dumps(x) for x in lines) + "\n{not json\n"
    p = parse_text(tmp_path, text)
    assert p.fs.select("position", "start_at", "end_at", "latency_ms", "tid", "pid", "bytes", "topic", "partition", "segment", "fs").rows() == [
        (2, at("2026-11-20 09:00:01"), at("2026-11-20 09:00:01.126500"), 126.5, 4462, 4400, 498, "orders-eu", 1, "00000000000000000042.log", "xfs"),
        (5, None, None, None, None, None, None, None, None, None, None),
    ]  # fmt: skip
    assert p.calls.select("position", "func", "start_at", "end_at", "latency_ms", "stack", "clock").rows() == [
        (3, "jbd2_journal_commit_transaction", at("2025-11-20 10:00:01"), at("2025-11-20 10:00:01.001500"), 1.5, None, "epoch"),
        (4, "ext4_dirty_inode", at("2026-11-20 09:00:02.500"), at("2026-11-20 09:00:02.750"), 250.0, ["a", "b"], "epoch"),
    ]  # fmt: skip
    assert [(e.position, e.what) for e in p.errs("error")] == [(6, "bad_row"), (5, "unanchored")]


def test_noise_never_fatal(tmp_path):
    text = (
        "Possibly lost 17 samples\n"
        "some prose about the run\n"
        + SEED_WRITES.splitlines()[0]
        + "\n17:58:00.643  garbage\n\x00\x01binary\n"
        + SEED_WRITES.splitlines()[0][:40]
        + "\n"
    )
    p = parse_text(tmp_path, text, DATE)
    assert p.fs["position"].to_list() == [3]
    assert [(e.position, e.severity, e.what) for e in p.errors if e.what != "clock"] == [
        (1, "data_loss", "lost_events"),
        (2, "info", "text"),
        (4, "error", "bad_row"),
        (5, "info", "text"),
        (6, "error", "bad_row"),
    ]


def test_paths_map_to_topic_partition_segment(tmp_path):
    paths = [
        "topicF-19/00000000001555977358.log",
        "pay-ments-eu-12/00000000000001234567.log",
        "/var/lib/kafka/data/__consumer_offsets-6/00000000000000000000.log",
        "kafka-logs/recovery-point-offset-checkpoint",
        "orders-0/00000000000001234567.index",
        "orders-0/1234567.log",
    ]
    text = "".join(f"17:58:00.643  17:58:00.769  126 ms   4462  498    1  {p}\n" for p in paths)
    p = parse_text(tmp_path, text, DATE)
    assert p.fs.select("topic", "partition", "segment").rows() == [
        ("topicF", 19, "00000000001555977358.log"),
        ("pay-ments-eu", 12, "00000000000001234567.log"),
        ("__consumer_offsets", 6, "00000000000000000000.log"),
        (None, None, None),
        (None, None, None),
        (None, None, None),
    ]


@pytest.mark.parametrize(
    "text",
    [SEED_WRITES, SEED_CALLS, LIBBPF_TEXT, FUNCSLOWER_T, FUNCSLOWER_t_a, "ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE\n",
     '{"event": "write", "start_ns": 1, "end_ns": 2}\n', '{"anchor": {"nsecs": 1, "epoch_ns": 2}}\n'],
)  # fmt: skip
def test_detected_by_content(tmp_path, text):
    path = tmp_path / "anything.bin"
    path.write_text(text)
    assert EbpfLogParser.detect(Probe.of(path))


@pytest.mark.parametrize(
    "text",
    ['{"clusterId":"","leaderId":1,"leaderEpoch":1}\n', "Full thread dump OpenJDK 64-Bit Server VM\n", "hello\n", ""],
)
def test_not_detected(tmp_path, text):
    path = tmp_path / "x"
    path.write_text(text)
    assert not EbpfLogParser.detect(Probe.of(path))


def test_gzipped_and_crlf_logs(tmp_path):
    path = tmp_path / "writes.log.gz"
    path.write_bytes(gzip.compress(SEED_WRITES.replace("\n", "\r\n").encode()))
    assert EbpfLogParser.detect(Probe.of(path))
    p = parse_file(path, DATE)
    assert p.fs["path"].to_list() == ["topicF-6/00000000000966764382.log"] * 4
    assert p.fs["end_at"].to_list()[0] == at("2023-08-01 17:58:00.769")
    assert p.errs("error", "data_loss") == []
