"""A short real lab run (ext4-ordered, 20 s) and an interrupted one.

Needs root, a free loop device, bpftrace, tcpdump, a JDK and the collection kit
(``collect/`` or $KFORENSICS_COLLECT_DIR); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import lab
from pipeline.ingest.records import decode_records, read_batch_header
from pipeline.manifest import load_manifest

pytestmark = [pytest.mark.slow, pytest.mark.needs_tool]

REPO = Path(__file__).resolve().parents[2]
CFG = lab.CONFIGS["ext4-ordered"]


def collect_dir() -> Path:
    return Path(os.environ.get("KFORENSICS_COLLECT_DIR", REPO / "collect")).resolve()


def skip_unless_lab_can_run(cfg: lab.FsConfig) -> None:
    reasons = lab.preflight([cfg], collect_dir())
    if not reasons and (why := lab.loop_device_available()):
        reasons.append(why)
    if reasons:
        pytest.skip("the lab cannot run here: " + "; ".join(reasons))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    skip_unless_lab_can_run(CFG)
    out = tmp_path_factory.mktemp("lab") / "run"
    opts = lab.LabOptions(duration_s=20, collect_dir=collect_dir(), image_mb=512, rate=800)
    return lab.run_lab(CFG, out, opts, echo=lambda _line: None)


def test_bundle_holds_every_artifact(short_run):
    b = short_run.bundle
    assert (b / "capture.pcap").read_bytes()[:4] == bytes.fromhex("d4c3b2a1")  # tcpdump, native little-endian
    assert (b / "jvm" / "broker.jfr").read_bytes()[:4] == b"FLR\0"
    dumps = sorted((b / "jvm").glob("jstack-*.txt"))
    assert len(dumps) == 2
    for d in dumps:
        text = d.read_text()
        assert "Full thread dump" in text and '"data-plane-kafka-request-handler-7"' in text
    dev = short_run.summary["dev"]
    fs_log = (b / "ebpf" / "fs_writes.txt").read_text()
    assert f"# kforensics bpftrace fs_writes v1 dev={dev} min_us=0\n" in fs_log
    assert f"# kforensics bpftrace journal v1 dev={dev}\n" in (b / "ebpf" / "journal.txt").read_text()
    m = load_manifest(b / "bundle.toml")
    assert m.timezone == "UTC" and m.message_id_header == "message-id" and m.slo_ms == 65.0
    assert len(m.kafka_ports) == 1
    assert abs(m.boot_time_ns - (time.time_ns() - time.monotonic_ns())) < 50_000_000
    assert sorted(p.name for p in (b / "segments").iterdir()) == [f"lab-{i}" for i in range(8)]


def test_everything_was_undone(short_run):
    state = json.loads((short_run.outdir / "lab-state.json").read_text())
    assert state["clean"] is True and state["pids"] == {} and state["steps"] == []
    assert short_run.summary["cleanup_errors"] == []
    mnt = short_run.summary["mountpoint"]
    assert not os.path.exists(mnt)
    assert list(short_run.outdir.glob("*.img")) == []
    out = subprocess.run(["losetup", "-nO", "BACK-FILE", short_run.summary["device"]], capture_output=True, text=True)
    assert str(short_run.outdir) not in out.stdout


def test_every_delivered_message_is_in_the_segments(short_run):
    import polars as pl

    prod = pl.read_csv(short_run.outdir / "producer.tsv", separator="\t", comment_prefix="#", infer_schema_length=0)
    # 20 s at 800/s; a starved producer stops on time with fewer
    assert 14000 <= prod.height <= 16000
    assert prod.filter(pl.col("error").is_not_null() & (pl.col("error") != "")).height == 0
    expected = {(mid, int(p), int(o)) for mid, p, o in prod.select("message_id", "partition", "offset").rows()}
    found = set()
    for part in sorted((short_run.bundle / "segments").iterdir()):
        data = (part / "00000000000000000000.log").read_bytes()
        pos = 0
        while pos < len(data):
            h = read_batch_header(data, pos)
            assert h.partition_leader_epoch == 1
            for r in decode_records(h, data, pos):
                found.add((dict(r.headers)["message-id"].decode(), int(part.name.split("-")[1]), r.offset))
            pos += h.size
    assert found == expected


def test_tracer_and_jfr_agree_with_the_broker(short_run):
    ev = short_run.honesty
    cov = ev["tracer_coverage"]
    assert cov["missing"] == 0 and cov["traced"] == ev["broker"]["appends"] - ev["broker"]["append_errors"]
    # the kernel's write() lies inside the broker's own FileChannel.write window
    assert cov["traced_minus_broker_ms"]["max"] <= 0
    # the broker's window (before `synchronized` to inside it) can also hold a safepoint or a
    # descheduling that is no monitor contention: JFR must have nearly all of them
    waits, in_jfr = ev["jfr"]["broker_waits_2ms"], ev["jfr"]["broker_waits_2ms_in_jfr"]
    assert waits - in_jfr <= max(1, waits // 10), ev["jfr"]
    assert ev["journal"]["commits"] > 0
    assert ev["writes"]["slow_writes_in_commit"] <= ev["writes"]["slow_writes"]


def test_pipeline_attributions_agree_with_independent_evidence(short_run):
    p = short_run.honesty["pipeline"]
    if p.get("status") != "checked":
        pytest.skip(f"pipeline attribution not available: {p.get('reason')}")
    assert short_run.honesty["failures"] == []
    for cause in ("journal_commit", "monitor_wait", "slow_write"):
        assert p[cause]["confirmed"] == p[cause]["attributed"], p[cause]


def start_run_in_background(cfg: lab.FsConfig, out: Path, stderr) -> subprocess.Popen:
    """`kforensics lab run` for 60 s without the pipeline, in its own process."""
    cmd = ["run", "--fs", cfg.name, "--duration", "60", "--image-mb", "256", "--no-pipeline"]
    cmd += ["--collect-dir", str(collect_dir()), "-o", str(out)]
    return subprocess.Popen(
        [sys.executable, "-c", "from pipeline.lab import lab_group; lab_group()", *cmd],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def state_once_producing(out: Path, proc: subprocess.Popen) -> dict:
    """The run's lab-state.json once the producer has started (every other process is up)."""
    state_file = out / "lab-state.json"
    deadline = time.monotonic() + 120
    state: dict = {}
    while time.monotonic() < deadline:
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            state = {}
        if "producer" in state.get("pids", {}):
            break
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        time.sleep(0.2)
    return state


def test_ctrl_c_stops_and_undoes_everything(tmp_path):
    cfg = lab.CONFIGS["ext4-writeback"]
    skip_unless_lab_can_run(cfg)
    out = tmp_path / "run"
    proc = start_run_in_background(cfg, out, subprocess.PIPE)
    pids = dict(state_once_producing(out, proc)["pids"])
    assert {"bpftrace-fs_writes", "bpftrace-journal", "tcpdump", "broker", "background-writer", "producer"} <= set(pids)
    proc.send_signal(signal.SIGINT)
    proc.wait(120)
    assert proc.returncode != 0
    after = json.loads((out / "lab-state.json").read_text())
    assert after["clean"] is True and after["pids"] == {} and after["steps"] == []
    for name, pid in pids.items():
        assert not lab.pid_alive(pid), f"{name} (pid {pid}) still running"
    assert not os.path.exists(after["mountpoint"])
    assert list(out.glob("*.img")) == []
    listed = subprocess.run(["losetup", "-nO", "BACK-FILE", after["device"]], capture_output=True, text=True)
    assert str(out) not in listed.stdout


def test_cleanup_after_sigkill(tmp_path):
    cfg = lab.CONFIGS["ext4-ordered"]
    skip_unless_lab_can_run(cfg)
    out = tmp_path / "run"
    proc = start_run_in_background(cfg, out, subprocess.DEVNULL)
    state = state_once_producing(out, proc)
    proc.kill()  # no chance to clean up
    proc.wait(10)
    assert os.path.ismount(state["mountpoint"])
    done = lab.cleanup_leftovers(out)
    assert f"unmounted {state['mountpoint']}" in done and f"detached {state['device']}" in done
    assert f"removed {state['image']}" in done
    for name, pid in state["pids"].items():
        assert not lab.pid_alive(pid), f"{name} (pid {pid}) still running"
    assert not os.path.exists(state["mountpoint"])
    assert json.loads((out / "lab-state.json").read_text())["clean"] is True
