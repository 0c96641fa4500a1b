"""The real BCC example outputs (man-page style, several output modes per file) parse exactly."""

from __future__ import annotations

import pytest
from ebpf_testlib import EBPF_CORPUS, at, parse_file

from pipeline.ingest.ebpf import EbpfLogParser
from pipeline.registry import Probe

pytestmark = pytest.mark.skipif(not EBPF_CORPUS.is_dir(), reason="shared corpus not present")

MANIFEST = 'date = "2016-02-07"\nboot_time_ns = 1454800000000000000\n'

# tool -> (fs, text rows by operation, CSV rows by operation): counted by hand in the files.
EXPECTED = {
    "ext4slower": ("ext4", {"open": 24, "read": 69, "write": 11}, {"read": 26}),
    "xfsslower": ("xfs", {"open": 9, "read": 49, "write": 1}, {"read": 8}),
    "btrfsslower": ("btrfs", {"open": 2, "read": 38, "write": 1}, {"read": 19}),
    "zfsslower": ("zfs", {"open": 1, "read": 22, "write": 31}, {"read": 21}),
    "nfsslower": ("nfs", {"getattr": 17, "open": 1, "read": 41, "write": 13}, {"getattr": 2, "open": 1, "read": 6, "write": 3}),
}  # fmt: skip


def corpus(tool: str):
    return EBPF_CORPUS / f"iovisor__bcc__{tool}_example.txt"


@pytest.mark.parametrize("tool", sorted(EXPECTED))
def test_fsslower_examples(tool):
    fs_name, text_ops, csv_ops = EXPECTED[tool]
    p = parse_file(corpus(tool), MANIFEST)
    assert EbpfLogParser.detect(Probe.of(corpus(tool)))
    by = p.fs.group_by("source_format", "operation").len().sort("source_format", "operation").rows()
    want = sorted(
        [("fsslower", op, n) for op, n in text_ops.items()] + [("fsslower_csv", op, n) for op, n in csv_ops.items()]
    )
    assert by == want
    assert set(p.fs["fs"]) == {fs_name}
    assert p.fs["start_at"].null_count() == 0
    assert p.fs["tid"].null_count() == p.fs.height  # stock tools print the process id only
    assert p.errs("error", "data_loss") == []
    # every other line is banner, header, command or prose: kept as info rows with line numbers
    infos = {e.what for e in p.errs("info")}
    assert infos <= {"banner", "header", "command", "text", "clock"}


def test_ext4slower_rows_exact():
    p = parse_file(corpus("ext4slower"), MANIFEST)
    rows = {r["position"]: r for r in p.fs.iter_rows(named=True)}
    r = rows[10]  # 06:35:01 cron           16464  R 1249    0          16.05 common-auth
    assert (r["operation"], r["end_at"], r["start_at"], r["latency_ms"], r["pid"], r["comm"], r["bytes"]) == (
        "read",
        at("2016-02-07 06:35:01"),
        at("2016-02-07 06:35:00.983950"),
        16.05,
        16464,
        "cron",
        1249,
    )
    assert (r["file_offset"], r["path"], r["raw_end"], r["clock"]) == (0, "common-auth", "06:35:01", "time_of_day")
    r = rows[78]  # 06:49:17 cksum          3616   R 65536   128        44.25 aptitude-curses
    assert (r["file_offset"], r["bytes"], r["latency_ms"]) == (128 * 1024, 65536, 44.25)
    r = rows[92]  # 06:58:05 supervise      1884   W 18      0           0.02 status.new
    assert (r["operation"], r["bytes"], r["latency_ms"], r["path"]) == ("write", 18, 0.02, "status.new")
    r = rows[91]  # 06:58:05 supervise      1884   O 0       0           0.00 status.new
    assert (r["operation"], r["bytes"]) == ("open", None)
    r = rows[156]  # 127200712278,bash,17225,R,128,0,14329,cksum
    assert (r["end_at"], r["start_at"], r["latency_ms"], r["pid"], r["comm"], r["bytes"], r["file_offset"]) == (
        at("2016-02-08 10:26:40.712278"),
        at("2016-02-08 10:26:40.697949"),
        14.329,
        17225,
        "bash",
        128,
        0,
    )
    assert (r["raw_end"], r["clock"], r["source_format"], r["fs"]) == (
        "127200712278",
        "monotonic",
        "fsslower_csv",
        "ext4",
    )


def test_zfs_and_nfs_rows_exact():
    p = parse_file(corpus("zfsslower"), MANIFEST)
    r = p.fs.filter(p.fs["position"] == 13).row(0, named=True)  # 06:31:35 dd 25686 W 131072 78720 519.66 data1
    assert (r["operation"], r["pid"], r["bytes"], r["file_offset"], r["latency_ms"], r["end_at"]) == (
        "write",
        25686,
        131072,
        78720 * 1024,
        519.66,
        at("2016-02-07 06:31:35"),
    )
    p = parse_file(corpus("nfsslower"), MANIFEST)
    r = p.fs.filter(p.fs["position"] == 125).row(0, named=True)  # 87054511340,cp,22756,G,0,0,371,1.test
    assert (r["operation"], r["bytes"], r["latency_ms"], r["end_at"]) == (
        "getattr",
        None,
        0.371,
        at("2016-02-07 23:17:34.511340"),
    )


def test_without_date_or_boot_time_rows_are_kept_unanchored():
    p = parse_file(corpus("ext4slower"))
    assert p.fs.height == 130
    assert p.fs["end_at"].null_count() == 130
    errors = [(e.position, e.what, e.message.split(":")[0]) for e in p.errs("error")]
    assert errors == [
        (10, "unanchored", "104 rows (lines 10..146) kept with null instants"),
        (156, "unanchored", "26 rows (lines 156..181) kept with null instants"),
    ]


def test_funcslower_example():
    p = parse_file(corpus("funcslower"), MANIFEST)
    assert p.fs.height == 0
    assert p.calls.group_by("func").len().sort("func").rows() == [
        ("/usr/sbin/nginx:database_write", 2),
        ("__kmalloc", 14),
        ("c:open", 16),
        ("vfs_read", 8),
    ]
    rows = {r["position"]: r for r in p.calls.iter_rows(named=True)}
    assert (rows[12]["latency_ms"], rows[12]["pid"], rows[12]["comm"], rows[12]["detail"]) == (
        0.03377,
        27074,
        "less",
        "rval=3",
    )
    assert rows[44]["latency_ms"] == 1053.6  # LAT(ms) block
    assert rows[61]["detail"] == "rval=ffff90054f9f8e40 args=0x90 0x1408240"
    assert rows[81]["stack"][:2] == [
        "DataBaseProvider::setData(std::string const&, record_s&)",
        "UserDataProvider::saveRecordData(RecordData const&)",
    ]
    assert len(rows[81]["stack"]) == 14 and rows[81]["stack"][-1] == "[unknown]"
    assert p.calls["stack"].null_count() == 38
    # no time column: latency is kept, the instants are not invented
    assert p.calls["start_at"].null_count() == 40
    assert [(e.position, e.what) for e in p.errs("error")] == [(12, "unanchored")]


@pytest.mark.parametrize(
    "name",
    ["iovisor__bcc__biosnoop_example.txt", "iovisor__bcc__fileslower_example.txt", "iovisor__bcc__trace_example.txt",
     "bpftrace__bpftrace__biosnoop_example.txt", "iovisor__bcc__offcputime_example.txt", "cloudflare__ebpf_exporter__ext4dist.yaml"],
)  # fmt: skip
def test_other_tools_are_not_taken(name):
    assert not EbpfLogParser.detect(Probe.of(EBPF_CORPUS / name))
