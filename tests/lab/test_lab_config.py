"""File-system configurations, clocks, statistics and the lab's log readers (no root needed)."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from pipeline import lab
from pipeline.lab_checks import (
    _duration_ns,
    _iso_ns,
    latency_stats,
    read_bpftrace,
    read_broker_log,
    render_matrix,
    truth_cause,
)


def test_every_issue_configuration_exists():
    assert list(lab.CONFIGS) == ["ext4-ordered", "ext4-writeback", "ext4-fastcommit", "ext4-commit1", "xfs"]


@pytest.mark.parametrize(
    ("name", "mkfs", "mount"),
    [
        (
            "ext4-ordered",
            ["mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "/dev/loop7"],
            ["mount", "-t", "ext4", "-o", "nodiscard,data=ordered", "/dev/loop7", "/mnt/x"],
        ),
        (
            "ext4-writeback",
            ["mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "/dev/loop7"],
            ["mount", "-t", "ext4", "-o", "nodiscard,data=writeback", "/dev/loop7", "/mnt/x"],
        ),
        (
            "ext4-fastcommit",
            [
                "mkfs.ext4",
                "-F",
                "-q",
                "-E",
                "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                "-O",
                "fast_commit",
                "/dev/loop7",
            ],
            ["mount", "-t", "ext4", "-o", "nodiscard,data=ordered", "/dev/loop7", "/mnt/x"],
        ),
        (
            "ext4-commit1",
            ["mkfs.ext4", "-F", "-q", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "/dev/loop7"],
            ["mount", "-t", "ext4", "-o", "nodiscard,data=ordered,commit=1", "/dev/loop7", "/mnt/x"],
        ),
        (
            "xfs",
            ["mkfs.xfs", "-f", "-q", "-K", "/dev/loop7"],
            ["mount", "-t", "xfs", "-o", "nodiscard", "/dev/loop7", "/mnt/x"],
        ),
    ],
)
def test_mkfs_and_mount_commands(name, mkfs, mount):
    cfg = lab.CONFIGS[name]
    assert lab.mkfs_command(cfg, "/dev/loop7") == mkfs
    assert lab.mount_command(cfg, "/dev/loop7", "/mnt/x") == mount


def test_kernel_dev_number_matches_the_tracepoint_encoding():
    # loop1 is 7:1; the kernel keeps (major << 20) | minor, e.g. 7340033
    assert lab.kernel_dev(os.makedev(7, 1)) == 7340033
    assert lab.kernel_dev(os.makedev(253, 0)) == 265289728


def test_preflight_names_every_missing_piece(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(lab.shutil, "which", lambda tool: None if tool in ("bpftrace", "mkfs.xfs") else "/bin/x")
    reasons = lab.preflight([lab.CONFIGS["xfs"]], tmp_path / "nowhere")
    assert reasons[0] == "not root: loop devices, mounts and bpftrace need root"
    assert "bpftrace (kernel tracing) not found on PATH" in reasons
    assert "mkfs.xfs not found (install xfsprogs)" in reasons
    assert f"collection kit not found: {tmp_path / 'nowhere' / 'bpftrace' / 'fs_writes.bt'}" in reasons


def test_lab_run_refuses_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(lab.LabRefused, match="the lab cannot run here: not root"):
        lab.run_lab(lab.CONFIGS["ext4-ordered"], tmp_path / "run", lab.LabOptions(collect_dir=tmp_path))
    assert not (tmp_path / "run").exists()  # refused before touching anything


def test_spread_and_verdict_claim_only_beyond_the_spread():
    a = lab.spread([20.0, 27.0, 22.0])
    assert a == {"median": 22.0, "min": 20.0, "max": 27.0, "runs": 3}
    assert lab.verdict(lab.spread([0.2, 0.3, 0.25]), a) == "lower"
    assert lab.verdict(lab.spread([30.0, 41.0]), a) == "higher"
    assert lab.verdict(lab.spread([19.0, 21.0]), a) == "within spread"
    assert lab.verdict(lab.spread([1.0]), a) == "one run: no spread"
    assert lab.verdict(lab.spread([]), a) == "n/a"


def test_latency_stats_nearest_rank():
    ms = [float(i) for i in range(1, 1001)]
    assert latency_stats(ms, slo_ms=990) == {
        "n": 1000,
        "p50": 501.0,
        "p99": 990.0,
        "p999": 999.0,
        "max": 1000.0,
        "over_slo": 11,
    }
    assert latency_stats([]) == {"n": 0}


def test_truth_cause_is_the_largest_component():
    assert truth_cause(1.0, 80.0, 3.0) == "monitor_wait"
    assert truth_cause(70.0, 2.0, 3.0) == "queue_wait"
    assert truth_cause(0.1, 0.0, 90.0) == "slow_write"
    assert truth_cause(0.1, 0.0, 1.0, hol_ms=200.0) == "head_of_line"
    assert truth_cause(0.1, 0.0, 1.0, hol_ms=20.0, read_delay_ms=70.0) == "read_delay"
    assert truth_cause(0.0, 0.0, 0.0) == "other"


def test_pre_read_wait_splits_at_the_previous_response():
    from pipeline.lab_checks import pre_read_split

    # on the wire at 0; previous response sent at 30 ms; read by the broker at 100 ms
    assert pre_read_split(0, 100_000_000, 30_000_000) == (30.0, 70.0)
    # the connection was free: all of it is the network thread's delay
    assert pre_read_split(0, 5_000_000, None) == (0.0, 5.0)
    # still muted when read (clock noise): all head-of-line, never negative
    assert pre_read_split(10_000_000, 40_000_000, 60_000_000) == (30.0, 0.0)


def test_jfr_instants_and_durations():
    assert _iso_ns("2026-11-26T00:42:03.144709389Z") == 1795653723144709389
    assert _iso_ns("2026-11-26T00:42:03Z") == 1795653723000000000
    assert _duration_ns("PT0.001133892S") == 1133892
    assert _duration_ns("PT1M2.5S") == 62500000000


def test_read_bpftrace_skips_comments_and_the_attach_line(tmp_path: Path):
    log = tmp_path / "journal.log"
    log.write_text(
        "Attaching 6 probes...\n"
        "# kforensics bpftrace journal v1 dev=7340032\n"
        "# anchor nsecs=1297752285502 wall=2026-11-26T00:38:27.790539+0000\n"
        "# columns\tevent\tstart_ns\tend_ns\ttid\tpid\tcomm\tdev\tdetail\n"
        "jbd2_journal_commit_transaction\t100\t250\t77\t77\tjbd2/loop0-8\t7340032\ttransaction=5 sync_commit=1\n"
        "ext4_fc_commit\t300\t310\t80\t70\tdata-plane-kafk\t7340032\ttid=5 nblks=1 reason=0 num_fc=1\n"
        "# anchor nsecs=1301378335130 wall=2026-11-26T00:38:31.416588+0000\n"
    )
    frame = read_bpftrace(log)
    assert frame.select("event", "start_ns", "end_ns", "tid", "comm").rows() == [
        ("jbd2_journal_commit_transaction", 100, 250, 77, "jbd2/loop0-8"),
        ("ext4_fc_commit", 300, 310, 80, "data-plane-kafk"),
    ]


def test_read_broker_log(tmp_path: Path):
    log = tmp_path / "broker-requests.tsv"
    log.write_text(
        "# kforensics lab broker request log v1\n"
        "# anchor nanotime=1120682481580 wall=2026-11-26T00:35:30.720762069Z\n"
        "# handler tid=31651 name=data-plane-kafka-request-handler-0\n"
        "# columns\trequest\tclient_port\tcorrelation_id\tapi_key\tapi_version\tclient_id\tacks\trequest_bytes"
        "\tresponse_bytes\tarrival_ns\tdequeue_ns\thandler_tid\tdone_ns\tsent_ns\n"
        "# columns\tappend\tclient_port\tcorrelation_id\ttopic\tpartition\terror_code\tbase_offset\tsegment"
        "\tfile_position\tbytes\tlock_requested_ns\tlock_acquired_ns\twrite_start_ns\twrite_end_ns\n"
        "request\t35716\t3\t0\t9\trdkafka\t-1\t131\t55\t1000\t2000\t31651\t90000000\t91000000\n"
        "append\t35716\t3\tlab\t1\t0\t7\t00000000000000000000.log\t119\t119\t2100\t70002100\t70002200\t80002200\n"
    )
    requests, appends, handlers = read_broker_log(log)
    assert handlers == {31651: "data-plane-kafka-request-handler-0"}
    assert requests.row(0, named=True)["sent_ns"] == 91000000
    assert appends.row(0, named=True)["segment"] == "00000000000000000000.log"
    from pipeline.lab_checks import broker_timeline

    t = broker_timeline(requests, appends).row(0, named=True)
    assert (t["queue_ms"], t["lock_ms"], t["write_ms"], t["broker_ms"]) == (0.001, 70.0, 10.0, 90.999)


def test_render_matrix_states_the_rule_and_the_sources():
    def run(cfg, p999, write_p999):
        ev = {
            "broker": {
                "produce_latency_ms": {"n": 10, "p50": 0.1, "p99": 2.0, "p999": p999, "max": p999 * 2, "over_slo": 1}
            },
            "writes": {"write_ms": {"p999": write_p999, "max": write_p999 * 3}},
            "journal": {"commit_ms": {"p50": 2.0, "max": 30.0}},
            "broker_causes": {"slow_write": 1},
            "pipeline": {"status": "skipped"},
            "failures": [],
        }
        return lab.RunResult(cfg, Path("."), Path("."), honesty=ev)

    results = [
        run("ext4-ordered", 20.0, 3.0),
        run("xfs", 10.0, 0.1),
        run("ext4-ordered", 25.0, 4.0),
        run("xfs", 21.0, 0.2),
    ]
    text = render_matrix(__import__("pipeline.lab_checks", fromlist=["x"]).matrix_table(results, "ext4-ordered", 65))
    assert "| ext4-ordered | 2 | 0.1 [0.1–0.1] | 2 [2–2] | 22.5 [20–25] |" in text
    assert "| xfs | within spread | within spread | within spread | within spread | within spread | lower |" in text
    assert "only where its range over runs does not overlap" in text
    assert "causes from ext4-ordered: broker timeline, xfs: broker timeline" in text


def test_lab_group_has_its_commands():
    assert set(lab.lab_group.commands) == {"run", "matrix", "table", "cleanup", "check"}
    assert isinstance(pl.__version__, str)


def test_cleanup_stops_by_pid_and_undoes_in_reverse_even_when_a_step_fails(tmp_path: Path):
    state = tmp_path / "lab-state.json"
    c = lab.Cleanup(state)
    done: list[str] = []
    c.push("first", lambda: done.append("first"))

    def broken():
        raise OSError("device busy")

    c.push("broken", broken)
    c.push("last", lambda: done.append("last"))
    # a shell that ignores SIGTERM and has a child: stopped by PID, then its group is killed
    stubborn = c.start("stubborn", ["sh", "-c", "trap '' TERM; sleep 600 & wait"], lab.signal.SIGTERM)
    polite = c.start("polite", ["sleep", "600"], lab.signal.SIGTERM)
    import json

    assert json.loads(state.read_text())["pids"] == {"stubborn": stubborn.pid, "polite": polite.pid}
    orig_stop = c.stop
    c.stop = lambda name, timeout=1.0: orig_stop(name, timeout)  # keep the test short
    c.run()
    assert done == ["last", "first"]
    # a process that needed SIGKILL is undone all the same (a note); a step that failed is an error
    assert (
        len(c.notes) == 1 and c.notes[0].startswith("stubborn (pid ") and c.notes[0].endswith("ignored SIGTERM: killed")
    )
    assert c.errors == ["broken: device busy"]
    assert stubborn.poll() is not None and polite.poll() is not None
    saved = json.loads(state.read_text())
    assert saved["pids"] == {} and saved["steps"] == [] and saved["clean"] is False


def test_every_lab_command_and_option_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "lab.md").read_text()
    for name, cmd in lab.lab_group.commands.items():
        assert f"lab {name}" in doc, f"docs/lab.md does not mention `lab {name}`"
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    assert f"`{opt}" in doc, f"docs/lab.md does not document {opt} of `lab {name}`"
    for cfg in lab.CONFIGS:
        assert f"`{cfg}`" in doc
