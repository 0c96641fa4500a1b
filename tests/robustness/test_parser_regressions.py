"""Inputs fuzzing found that made a parser crash, each reduced to a few lines, and what the
parser must say about them instead."""

from __future__ import annotations

from pathlib import Path

from fuzz.harness import parse_bytes, problems

REGRESSIONS = Path(__file__).resolve().parent / "regressions"

KIT_HEAD = (
    "Attaching 12 probes...\n"
    "# kforensics bpftrace fs_writes v1 dev=7340032 min_us=0\n"
    "# anchor nsecs=2724662566548 wall=2026-11-26T01:02:14.700820+0000\n"
    "# columns\tevent\tstart_ns\tend_ns\ttid\tpid\tcomm\tbytes\tfile_offset\tdev\tfs\tdir_len\tpath\n"
)
KIT_ROW = "write\t{start}\t2725302786924\t3923\t{pid}\tdata-plane-kafk\t498\t0\t7340032\text4\t8\torders-0/00000000000001234567.log\n"


def _errors(outcome):
    return [(e.position, e.what) for e in outcome.errors if e.severity != "info"]


def test_ebpf_kit_row_with_a_timestamp_beyond_64_bits(tmp_path):
    good = KIT_ROW.format(start=2725302770849, pid=3922)
    bad = KIT_ROW.format(start="27326550333333333333333333399888", pid=3922)
    outcome = parse_bytes("ebpf", (KIT_HEAD + good + bad + good).encode(), tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 2
    assert _errors(outcome) == [(6, "bad_row")]
    assert "out of range" in next(e.message for e in outcome.errors if e.what == "bad_row")


def test_ebpf_kit_row_with_a_pid_beyond_64_bits(tmp_path):
    good = KIT_ROW.format(start=2725302770849, pid=3922)
    bad = KIT_ROW.format(start=2725302770849, pid="9" * 25)
    outcome = parse_bytes("ebpf", (KIT_HEAD + bad + good).encode(), tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 1
    assert _errors(outcome) == [(5, "bad_row")]
    assert "does not fit its column" in next(e.message for e in outcome.errors if e.what == "bad_row")


def test_fuzzer_found_inputs_stay_fixed(tmp_path):
    """Every file in regressions/ is named ``<kind>-<what>.bin`` and parses without a crash."""
    files = sorted(REGRESSIONS.glob("*.bin"))
    assert files
    for f in files:
        kind = f.name.split("-")[0]
        outcome = parse_bytes(kind, f.read_bytes(), tmp_path / f.stem)
        assert problems(outcome) == [], f.name


SEGMENT = Path(__file__).resolve().parents[2] / "fixtures/demo/segments/topicD-7/00000000000398845686.log"


def test_gzip_segment_with_a_damaged_header_is_data_loss_not_a_crash(tmp_path):
    import gzip

    data = bytearray(gzip.compress(SEGMENT.read_bytes()))
    data[2] = 0xFF  # compression method: none known
    outcome = parse_bytes("segment", bytes(data), tmp_path)
    assert problems(outcome) == []
    assert outcome.status == "failed"
    assert [(e.position, e.what, e.severity) for e in outcome.errors] == [(0, "gzip_damaged", "data_loss")]


def test_cut_gzip_segment_keeps_what_inflates(tmp_path):
    import gzip

    raw = SEGMENT.read_bytes()
    data = gzip.compress(raw)
    outcome = parse_bytes("segment", data[:-20], tmp_path)
    assert problems(outcome) == []
    assert [(e.what, e.severity) for e in outcome.errors] == [("gzip_damaged", "data_loss"), ("truncated_tail", "info")]
    assert 0 < outcome.errors[0].position < len(raw)


def test_thread_dump_numbers_beyond_their_columns_are_left_null_with_an_error(tmp_path):
    text = (
        "2026-11-20 17:58:01\n"
        "Full thread dump OpenJDK 64-Bit Server VM (17.0.9+9 mixed mode):\n\n"
        '"a" #12 daemon prio=5 os_prio=0 cpu=1.00ms elapsed=2.00s tid=0x00007f nid=0x'
        + "f"
        * 40
        + " waiting on condition  [0x0]\n"
        "   java.lang.Thread.State: RUNNABLE\n\n"
        '"b" #99999999999999999999 prio=99999999999 os_prio=0 cpu=1.00ms elapsed=2.00s tid=0x1 nid=0x1e61 runnable\n'
        "   java.lang.Thread.State: RUNNABLE\n"
    )
    outcome = parse_bytes("threaddump", text.encode(), tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 2
    assert [(e.position, e.what) for e in outcome.errors if e.severity == "error"] == [
        (4, "bad_number"),
        (7, "bad_number"),
        (7, "bad_number"),
    ]


def test_json_thread_dump_nested_too_deeply_is_bad_json(tmp_path):
    text = '{"threadDump": {"threadContainers": [{"threads": ' + "[" * 100_000 + "]" * 100_000 + "}]}}"
    outcome = parse_bytes("threaddump", text.encode(), tmp_path)
    assert problems(outcome) == []
    assert [(e.position, e.what, e.message) for e in outcome.errors] == [
        (1, "bad_json", "JSON thread dump nests too deeply to be read")
    ]


def test_json_thread_dump_with_entries_of_the_wrong_type(tmp_path):
    text = (
        '{"threadDump": {"time": 5, "threadContainers": [1, {"threads": [\n2,\n'
        '{"tid": "123456789012345678901234567890", "stack": 5, "name": 7, "monitorsOwned": 3, "parkBlocker": 1},\n'
        '{"tid": "8", "stack": ["a.b(X.java:1)"], "name": "main"}]}]}}'
    )
    outcome = parse_bytes("threaddump", text.encode(), tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 2
    assert [(e.position, e.what) for e in outcome.errors if e.severity == "error"] == [
        (1, "bad_json"),
        (1, "bad_number"),
    ]


def test_thread_dump_cpu_and_elapsed_that_are_not_numbers_are_left_null(tmp_path):
    text = (
        "Full thread dump OpenJDK 64-Bit Server VM (17.0.9+9 mixed mode):\n\n"
        '"a" #12 prio=5 os_prio=0 cpu=.4348.57ms elapsed=1.2.3s tid=0x1 nid=0x1e61 runnable\n'
        "   java.lang.Thread.State: RUNNABLE\n"
    )
    outcome = parse_bytes("threaddump", text.encode(), tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 1 and outcome.status == "ok"


def test_gzip_segment_inflating_past_the_cap_stops_with_data_loss(tmp_path, monkeypatch):
    import gzip

    from pipeline.ingest import segments

    raw = SEGMENT.read_bytes()
    monkeypatch.setattr(segments, "MAX_INFLATED", len(raw) + 100)  # the real cap is 2 GiB
    data = gzip.compress(raw + bytes(3 << 20))  # a batch, then 3 MiB of zeros
    outcome = parse_bytes("segment", data, tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 2  # the batch before the cap is read
    loss = [(e.position, e.what) for e in outcome.errors if e.severity == "data_loss"]
    assert loss[0] == (len(raw) + 100, "gzip_too_large")


def test_jfr_skipping_a_value_past_the_end_is_a_format_error():
    """Fuzzing found a pool entry whose last field lay past the end of the recording."""
    import pytest

    from pipeline.ingest.jfr_format import Codec, JfrFormatError, read_header, read_metadata

    buf = (Path(__file__).resolve().parents[2] / "fixtures/demo/jvm/broker.jfr").read_bytes()
    types = read_metadata(buf, read_header(buf, 0))
    codec = Codec(types, compressed=True)
    thread = next(tid for tid, t in types.items() if t.name == "java.lang.Thread")
    skip = codec.skipper(thread)
    entry = b"\x03\x04main"  # osName "main", then the recording ends before osThreadId
    with pytest.raises(JfrFormatError, match="cannot read field osThreadId"):
        skip(entry, 0)


def test_ebpf_path_with_a_partition_no_int32_holds_is_not_a_segment(tmp_path):
    good = KIT_ROW.format(start=2725302770849, pid=3922)
    odd = good.replace("orders-0/", "orders-09999999999999999999999999/")
    outcome = parse_bytes("ebpf", (KIT_HEAD + good + odd).encode(), tmp_path)
    assert problems(outcome) == []
    assert outcome.rows == 2 and outcome.status == "ok"
