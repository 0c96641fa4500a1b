"""Any text at all parses without raising, and every line is accounted for."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ebpf_testlib import parse_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PIECES = [
    "17:58:00.643  17:58:00.769  126 ms   4462  498    167428091  topicF-6/00000000000966764382.log",
    "19:35:24.503  19:35:24.680  176 ms   jbd2_journal_commit_transaction",
    "TIME     COMM           PID    T BYTES   OFF_KB   LAT(ms) FILENAME",
    "06:35:01 cron           16464  R 1249    0          16.05 common-auth",
    "ENDTIME_us,TASK,PID,TYPE,BYTES,OFFSET_b,LATENCY_us,FILE",
    "127200712278,bash,17225,R,128,0,14329,cksum",
    "Tracing function calls slower than 1 us... Ctrl+C to quit.",
    "TIME       COMM           PID    LAT(us)             RVAL FUNC ARGS",
    "19:35:24   java           4401     20.50                0 ext4_dirty_inode 0x1",
    "    ext4_dirty_inode+0x0",
    "# kforensics bpftrace fs_writes v1 dev=0 min_us=0",
    "# anchor nsecs=5000000000 wall=2026-11-20T10:00:00.000000+0100",
    "# columns\tevent\tstart_ns\tend_ns\ttid\tpid\tcomm\tbytes\tfile_offset\tdev\tfs\tpath",
    "write\t6000000000\t6126000000\t4462\t4400\tk\t498\t1000\t1\text4\torders-0/00000000000000000000.log",
    "write\t1\t2",
    '{"event": "write", "start_ns": 1, "end_ns": 2}',
    '{"anchor": {"nsecs": 1}}',
    "Possibly lost 3 samples",
    "",
]

lines = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=60)), max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines, st.sampled_from(["", 'date = "2026-11-20"\nboot_time_ns = 1000\n']))
def test_any_text_is_read_and_accounted(text_lines, manifest):
    text = "\n".join(x.replace("\r", " ").replace("\n", " ") for x in text_lines) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.txt"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        p = parse_file(path, manifest)
    positions = set(p.fs["position"]) | set(p.calls["position"])
    noted = {e.position for e in p.errors if e.position is not None and e.what not in ("unanchored",)}
    for no, line in enumerate(text.split("\n")[:-1], start=1):  # the reader splits on \n only
        if not line.strip() or line[0] in " \t":
            continue  # blank lines, and stack frames (kept under their row) or prose
        assert no in positions or no in noted, (no, line)
