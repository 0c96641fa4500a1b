"""The scenario writers produce real formats, and a generated bundle on disk is attributed
like its ground truth once the parsers exist (those tests skip while a parser is missing)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import warnings
from collections import defaultdict
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner

from fixtures.scenarios.bundle import write_bundle
from fixtures.scenarios.catalog import SCENARIOS
from fixtures.scenarios.frames import segment_layout
from fixtures.scenarios.model import simulate
from pipeline.cli import cli
from pipeline.registry import ParseContext, Probe, detect
from pipeline.store import Store


@pytest.fixture(scope="module")
def seed_bundle(tmp_path_factory):
    sim = simulate(SCENARIOS["seed"]())
    out = tmp_path_factory.mktemp("seed") / "bundle"
    write_bundle(sim, out)
    return sim, out


def tcp_streams(path: Path) -> dict[tuple, bytes]:
    """Payload bytes per (src, sport, dst, dport) direction, in capture order."""
    streams: dict[tuple, bytearray] = defaultdict(bytearray)
    with open(path, "rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            tcp = ip.data
            streams[(ip.src, tcp.sport, ip.dst, tcp.dport)] += tcp.data
    return {k: bytes(v) for k, v in streams.items()}


def frames_of(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack_from(">i", data, i)
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    assert i == len(data)
    return out


def test_capture_decodes_with_kafka_python(seed_bundle):
    from kafka.protocol.producer.produce import ProduceRequest

    sim, out = seed_bundle
    batches = {(d.correlation_id, d.req.topic, d.req.partition): d.batch.data for d in sim.requests}
    seen = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for (_, _, _, dport), data in tcp_streams(out / "capture" / "broker.pcap").items():
            if dport != 9092:
                continue
            for frame in frames_of(data):
                api_key, version, corr = struct.unpack_from(">hhi", frame)
                if api_key != 0:
                    continue
                req = ProduceRequest.decode(frame, version=version, header=True)
                for t in req.topic_data:
                    for p in t.partition_data:
                        seen[(corr, t.name, p.index)] = bytes(p.records)
    assert seen == batches


def test_segments_hold_the_batches_with_valid_crcs(seed_bundle):
    from kafka.record.default_records import DefaultRecordBatch

    sim, out = seed_bundle
    layout = segment_layout(sim)
    d = next(d for d in sim.requests if d.write.tid == 4462 and d.cause)
    seg = out / "segments" / "topicF-6" / "00000000000966764382.log"
    data = seg.read_bytes()
    batch = DefaultRecordBatch(data[d.write.file_offset : d.write.file_offset + d.write.bytes])
    assert batch.validate_crc()
    assert batch.base_offset == layout[d.write.write_id][0]
    assert struct.unpack_from(">I", data, d.write.file_offset + 17)[0] == d.batch.crc
    assert [dict(r.headers)["message-id"] for r in batch] == [b"75567596"]


def test_ebpf_lines_are_the_seed_format(seed_bundle):
    _, out = seed_bundle
    lines = (out / "ebpf" / "ext4slower.log").read_text().splitlines()
    slow = [ln for ln in lines if " 4462 " in ln and "topicF-6/" in ln and "17:58:00.6" in ln]
    assert slow == [
        "17:58:00.643950  17:58:00.769554    125.604 ms  4462   498    4155       topicF-6/00000000000966764382.log"
    ]
    journal = (out / "ebpf" / "journal.log").read_text().splitlines()
    assert journal[0] == "17:58:00.643500  17:58:00.774500    131.000 ms  jbd2_journal_commit_transaction"


def test_thread_dump_names_the_blocked_handler(seed_bundle):
    _, out = seed_bundle
    text = (out / "jvm" / "threaddump.txt").read_text()
    assert text.startswith("2026-11-20 17:58:00\nFull thread dump OpenJDK 64-Bit Server VM (17.0.9")
    block = text.split('"data-plane-kafka-request-handler-24" ')[1].split("\n\n")[0]
    assert " nid=0x1184 waiting for monitor entry " in block
    assert "java.lang.Thread.State: BLOCKED (on object monitor)" in block
    assert "\t- waiting to lock <0x" in block
    holder = text.split('"data-plane-kafka-request-handler-2" ')[1].split("\n\n")[0]
    assert "nid=0x116e runnable" in holder and "\t- locked <0x" in holder


@pytest.mark.needs_tool
def test_jfr_recording_reads_with_the_jdk_tool(seed_bundle):
    if shutil.which("jfr") is None:
        pytest.skip("the JDK's jfr tool is not installed")
    _, out = seed_bundle
    res = subprocess.run(
        ["jfr", "print", "--json", "--events", "jdk.JavaMonitorEnter,jdk.FileWrite", str(out / "jvm" / "broker.jfr")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    events = json.loads(res.stdout)["recording"]["events"]
    waits = sorted((e for e in events if e["type"] == "jdk.JavaMonitorEnter"), key=lambda e: e["values"]["startTime"])
    assert [
        (e["values"]["startTime"], e["values"]["duration"], e["values"]["eventThread"]["osThreadId"]) for e in waits
    ] == [
        ("2026-11-20T17:58:00.651630Z", "PT0.118144S", 4484),
        ("2026-11-20T17:58:00.655930Z", "PT0.114389S", 4499),
        ("2026-11-20T17:58:00.661830Z", "PT0.113509S", 4467),
    ]
    assert waits[0]["values"]["eventThread"]["javaName"] == "data-plane-kafka-request-handler-24"
    assert [e["values"]["previousOwner"]["osThreadId"] for e in waits] == [4462, 4484, 4499]
    assert waits[0]["values"]["stackTrace"]["frames"][0]["method"]["name"] == "append"
    (fw,) = [e["values"] for e in events if e["type"] == "jdk.FileWrite"]
    assert (fw["startTime"], fw["bytesWritten"], fw["eventThread"]["osThreadId"]) == (
        "2026-11-20T17:58:00.644150Z",
        498,
        4462,
    )
    assert fw["path"] == "/var/lib/kafka/data/topicF-6/00000000000966764382.log"


@pytest.mark.needs_tool
def test_capture_reads_with_tshark(seed_bundle):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    sim, out = seed_bundle
    res = subprocess.run(
        [
            "tshark",
            "-r",
            str(out / "capture" / "broker.pcap"),
            "-Y",
            "kafka.api_key == 0 && kafka.api_version == 7",
            "-T",
            "fields",
            "-e",
            "kafka.correlation_id",
            "-e",
            "kafka.topic_name",
            "-e",
            "kafka.partition_id",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    got = {tuple(ln.split("\t")) for ln in res.stdout.splitlines() if ln.strip()}
    from fixtures.scenarios.frames import produce_version

    want = {
        (str(d.correlation_id), d.req.topic, str(d.req.partition)) for d in sim.requests if produce_version(d.conn) == 7
    }
    assert want and got == want


# -- end to end: bundle on disk -> kforensics run -------------------------------------------


def missing_parsers(bundle: Path) -> list[str]:
    """Kinds whose parser cannot read its file of this bundle yet."""
    out = []
    for f in sorted(p for p in bundle.rglob("*") if p.is_file() and p.name != "bundle.toml"):
        probe = Probe.of(f, f.relative_to(bundle).as_posix())
        parser = detect(probe)
        if parser is None:
            out.append(f"undetected {probe.name}")
            continue
        try:
            next(iter(parser().parse(ParseContext(f, probe.name, "probe"))), None)
        except NotImplementedError:
            out.append(parser.kind)
    return sorted(set(out))


def run_bundle(bundle: Path, out: Path) -> None:
    missing = missing_parsers(bundle)
    if missing:
        pytest.skip(f"parsers not implemented yet for: {', '.join(missing)}")
    res = CliRunner().invoke(cli, ["-q", "run", str(bundle), "-o", str(out)])
    assert res.exit_code == 0, res.output


def test_end_to_end_seed_bundle(seed_bundle, tmp_path):
    sim, bundle = seed_bundle
    run_bundle(bundle, tmp_path / "out")
    with Store(tmp_path / "out", read_only=True) as store:
        rows = store.frame(
            "select correlation_id, cause, root_cause, blocker_tid from attribution where slow order by arrival_at"
        ).rows()
    want = [
        (t["correlation_id"], t["cause"], t["root_cause"], t["blocker_tid"])
        for t in sorted(sim.truth(), key=lambda t: t["arrival_us"])
        if t["slow"]
    ]
    assert rows == want


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixed", "saturated", "skewed", "multi_partition"])
def test_end_to_end_generated_bundles(tmp_path, name):
    sim = simulate(SCENARIOS[name]())
    write_bundle(sim, tmp_path / "bundle")
    run_bundle(tmp_path / "bundle", tmp_path / "out")
    with Store(tmp_path / "out", read_only=True) as store:
        got = {
            (r[0], r[1], r[2]): (r[3], r[4])
            for r in store.frame("select correlation_id, topic, partition, cause, root_cause from attribution").rows()
        }
    want = {(t["correlation_id"], t["topic"], t["partition"]): (t["cause"], t["root_cause"]) for t in sim.truth()}
    assert got == want


def test_demo_bundle_is_the_generated_seed(tmp_path):
    """fixtures/demo is committed: it must be exactly what the generator writes today."""
    demo = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
    write_bundle(simulate(SCENARIOS["seed"]()), tmp_path / "seed")
    files = sorted(p.relative_to(demo).as_posix() for p in demo.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(tmp_path / "seed").as_posix() for p in (tmp_path / "seed").rglob("*") if p.is_file()
    )
    for name in files:
        assert (demo / name).read_bytes() == (tmp_path / "seed" / name).read_bytes(), name
    assert sum((demo / n).stat().st_size for n in files) < 500_000


def test_demo_end_to_end(tmp_path):
    demo = Path(__file__).resolve().parents[2] / "fixtures" / "demo"
    run_bundle(demo, tmp_path / "out")
    res = CliRunner().invoke(cli, ["-q", "correlate", str(tmp_path / "out")])
    assert "4 slower than 65 ms" in res.output
    assert "monitor_wait / journal_commit" in res.output


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_manifest_is_valid(name):
    from fixtures.scenarios.bundle import manifest_text
    from pipeline.manifest import parse_manifest

    sc = SCENARIOS[name]()
    m = parse_manifest(manifest_text(sc))
    assert (m.date, m.timezone, m.slo_ms, m.message_id_header) == (sc.date, "UTC", sc.slo_ms, "message-id")
    assert m.description.startswith(f"{name}: ")
