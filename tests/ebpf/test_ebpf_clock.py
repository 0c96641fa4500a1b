"""Clock anchoring: date and timezone, midnight, boot-relative clocks, anchors, offsets."""

from __future__ import annotations

import datetime as dt

from ebpf_testlib import at, parse_text

W = "  4462  498    1000  topicF-6/00000000000966764382.log\n"
KIT_HEAD = (
    "# kforensics bpftrace fs_writes v1 dev=0 min_us=0\n"
    "# anchor nsecs=5000000000 wall=2026-11-20T10:00:00.000000+0100\n"
    "# columns\tevent\tstart_ns\tend_ns\ttid\tpid\tcomm\tbytes\tfile_offset\tdev\tfs\tpath\n"
)
KIT_ROW = "write\t6000000000\t6126000000\t4462\t4400\tdata-plane-kafk\t498\t1000\t7340033\text4\torders-0/00000000000000000000.log\n"


def test_interval_across_midnight(tmp_path):
    p = parse_text(tmp_path, "23:59:59.900  00:00:00.100  200 ms" + W, 'date = "2026-11-19"\n')
    assert p.fs.select("start_at", "end_at", "latency_ms").row(0) == (
        at("2026-11-19 23:59:59.900"),
        at("2026-11-20 00:00:00.100"),
        200.0,
    )


def test_rollover_and_out_of_order_lines(tmp_path):
    text = "".join(
        f"{t}  {t}  0 ms" + W for t in ["23:59:59.500", "00:00:00.500", "23:59:59.800", "00:00:01.000", "18:00:00.000"]
    )
    text += "".join(f"{t}  {t}  0 ms" + W for t in ["00:00:00.250"])  # the next midnight
    p = parse_text(tmp_path, text, 'date = "2026-11-19"\n')
    assert p.fs["start_at"].to_list() == [
        at("2026-11-19 23:59:59.500"),
        at("2026-11-20 00:00:00.500"),
        at("2026-11-19 23:59:59.800"),
        at("2026-11-20 00:00:01"),
        at("2026-11-20 18:00:00"),
        at("2026-11-21 00:00:00.250"),
    ]


def test_timezone_and_daylight_saving_change(tmp_path):
    # Europe/Warsaw leaves CET (UTC+1) for CEST (UTC+2) at 02:00 local on 2026-03-29.
    text = "01:59:59.000  01:59:59.500  500 ms" + W + "03:00:01.000  03:00:01.000  0 ms" + W
    p = parse_text(tmp_path, text, 'date = "2026-03-29"\ntimezone = "Europe/Warsaw"\n')
    assert p.fs["start_at"].to_list() == [at("2026-03-29 00:59:59"), at("2026-03-29 01:00:01")]
    assert p.fs["raw_start"].to_list() == ["01:59:59.000", "03:00:01.000"]
    note = [e for e in p.errors if e.what == "clock"]
    assert note[0].message == "2 time-of-day rows anchored on the manifest date 2026-03-29 in Europe/Warsaw"


def test_capture_date_when_no_manifest_date_and_manifest_date_wins(tmp_path):
    line = "17:58:00.643  17:58:00.769  126 ms" + W
    p = parse_text(tmp_path, line, "", hints={"capture_date": dt.date(2026, 1, 2)})
    assert p.fs["start_at"].to_list() == [at("2026-01-02 17:58:00.643")]
    assert [e.message for e in p.errors if e.what == "clock"] == [
        "1 time-of-day rows anchored on the capture date 2026-01-02 in UTC (no timezone in bundle.toml)"
    ]
    p = parse_text(tmp_path, line, 'date = "2026-11-20"\n', hints={"capture_date": dt.date(2026, 1, 2)})
    assert p.fs["start_at"].to_list() == [at("2026-11-20 17:58:00.643")]


def test_unanchorable_file_gives_one_summary_error(tmp_path):
    text = "".join(f"17:{m:02d}:00.000  17:{m:02d}:00.100  100 ms" + W for m in range(60)) * 50
    p = parse_text(tmp_path, text)
    assert p.fs.height == 3000
    assert p.fs["start_at"].null_count() == 3000
    assert p.fs["raw_start"][0] == "17:00:00.000"
    assert [(e.position, e.severity, e.what) for e in p.errors] == [(1, "error", "unanchored")]
    assert p.errors[0].message.startswith("3000 rows (lines 1..3000) kept with null instants: time of day with no date")


def test_boot_relative_csv_uses_boot_time(tmp_path):
    text = "ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE\n127200712278,bash,17225,R,128,0,14329,cksum\n"
    p = parse_text(tmp_path, text, "boot_time_ns = 1763600000000000000\n")
    # 1763600000 s = 2025-11-20 00:53:20 UTC; + 127200.712278 s
    assert p.fs.select("start_at", "end_at", "latency_ms", "raw_end", "clock").row(0) == (
        at("2025-11-21 12:13:20.697949"),
        at("2025-11-21 12:13:20.712278"),
        14.329,
        "127200712278",
        "monotonic",
    )
    p = parse_text(tmp_path, text)
    assert p.fs["end_at"].to_list() == [None]
    assert [e.what for e in p.errs("error")] == ["unanchored"]


def test_anchor_line_wins_over_boot_time(tmp_path):
    p = parse_text(tmp_path, KIT_HEAD + KIT_ROW, "boot_time_ns = 1000\n")
    assert p.fs.select("start_at", "end_at", "latency_ms", "raw_start", "raw_end").row(0) == (
        at("2026-11-20 09:00:01"),
        at("2026-11-20 09:00:01.126"),
        126.0,
        "6000000000",
        "6126000000",
    )


def test_offsets_apply_to_every_clock(tmp_path):
    offset = "[clock_offsets_ms]\nebpf = -250.5\n"
    p = parse_text(tmp_path, KIT_HEAD + KIT_ROW, offset)
    assert p.fs["start_at"].to_list() == [at("2026-11-20 09:00:00.749500")]
    p = parse_text(tmp_path, "17:58:00.643  17:58:00.769  126 ms" + W, 'date = "2026-11-20"\n' + offset)
    assert p.fs.select("start_at", "end_at").row(0) == (
        at("2026-11-20 17:58:00.392500"),
        at("2026-11-20 17:58:00.518500"),
    )
    text = '{"event": "write", "start_epoch_ns": 1763632801000000000, "end_epoch_ns": 1763632801002000000}\n'
    p = parse_text(tmp_path, text, offset)
    assert p.fs.select("start_at", "end_at", "latency_ms").row(0) == (
        at("2025-11-20 10:00:00.749500"),
        at("2025-11-20 10:00:00.751500"),
        2.0,
    )


def test_kit_rows_without_any_anchor_are_counted_once(tmp_path):
    head = "".join(line + "\n" for line in KIT_HEAD.splitlines() if not line.startswith("# anchor"))
    p = parse_text(tmp_path, head + KIT_ROW * 3)
    assert p.fs["start_at"].to_list() == [None] * 3
    assert p.fs["latency_ms"].to_list() == [126.0] * 3
    assert [(e.position, e.what) for e in p.errs("error")] == [(3, "unanchored")]
    assert p.errors[-1].message.startswith("3 rows (lines 3..5) kept with null instants: boot-relative clock")
