"""Wireshark-style damage to a real client capture: editcap byte errors at several rates,
duplicated and dropped packets. The ingest finishes, every produce pair untouched by the
damage is found with the same values, and the damage is accounted for."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dpkt
import polars as pl
import pytest

from pipeline.ingest.pcap import CaptureParser
from pipeline.registry import ParseContext
from pipeline.runner import check_frame

REPO = Path(__file__).resolve().parents[2]
CAPTURE = REPO / "fixtures" / "wire" / "librdkafka.pcap"
PAIR_KEY = ["conn_id", "correlation_id"]
VALUES = ["api_key", "api_version", "client_id", "arrival_at", "end_at", "request_bytes", "response_bytes", "complete"]

pytestmark = pytest.mark.skipif(not shutil.which("editcap"), reason="editcap (Wireshark) not installed")


def _ingest(path: Path) -> tuple[dict[str, pl.DataFrame], ParseContext]:
    ctx = ParseContext(path, path.name, "t")
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, frame in CaptureParser().parse(ctx):
        frames.setdefault(table, []).append(check_frame(CaptureParser, table, frame))
    return {t: pl.concat(f) for t, f in frames.items()}, ctx


def _packets(path: Path) -> list[tuple[bytes, tuple | None]]:
    """Each packet's bytes and its connection (sorted address/port pair), 1-based order."""
    out = []
    with open(path, "rb") as f:
        ng = f.read(4) == b"\x0a\x0d\x0d\x0a"
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if ng else dpkt.pcap.Reader(f)
        for _, buf in reader:
            conn = None
            try:
                ip = dpkt.ethernet.Ethernet(buf).data
                if isinstance(ip.data, dpkt.tcp.TCP):
                    conn = tuple(sorted([(bytes(ip.src), ip.data.sport), (bytes(ip.dst), ip.data.dport)]))
            except (dpkt.UnpackError, AttributeError):
                pass
            out.append((bytes(buf), conn))
    return out


def _first_damage(original: Path, damaged: Path) -> dict[tuple, int]:
    """Per connection, the number of the first packet whose bytes differ."""
    first: dict[tuple, int] = {}
    for n, ((a, conn), (b, _)) in enumerate(zip(_packets(original), _packets(damaged), strict=True), 1):
        if a != b and conn is not None:
            first.setdefault(conn, n)
    return first


def _conn_of(row: dict) -> tuple:
    import ipaddress

    c = (ipaddress.ip_address(row["client_addr"]).packed, row["client_port"])
    b = (ipaddress.ip_address(row["broker_addr"]).packed, row["broker_port"])
    return tuple(sorted([c, b]))


@pytest.fixture(scope="module")
def clean():
    tables, ctx = _ingest(CAPTURE)
    assert [e.what for e in ctx.errors if e.severity != "info"] == []
    return tables


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.05])
def test_random_byte_errors_keep_every_intact_pair(rate, clean, tmp_path):
    damaged = tmp_path / f"errors-{rate}.pcapng"
    subprocess.run(["editcap", "--seed", "20261126", "-E", str(rate), str(CAPTURE), str(damaged)], check=True)
    tables, ctx = _ingest(damaged)
    assert not [e for e in ctx.errors if e.what in ("parser_crash", "parser_bug")]
    first = _first_damage(CAPTURE, damaged)
    assert first, "editcap changed nothing: the test would prove nothing"
    reqs = clean["kafka_requests"]
    intact = reqs.filter(
        pl.Series([r["response_position"] < first.get(_conn_of(r), 10**9) for r in reqs.iter_rows(named=True)])
    )
    found = tables["kafka_requests"].join(intact.select(PAIR_KEY), on=PAIR_KEY, how="semi")
    assert found.height == intact.height, f"{intact.height - found.height} intact pairs lost at rate {rate}"
    assert found.sort(PAIR_KEY).select(VALUES).equals(intact.sort(PAIR_KEY).select(VALUES))
    # produce partitions of intact requests: same topics, partitions, batches and message ids
    cols = ["topic", "partition", "records", "batch_crc", "message_ids"]
    want = (
        clean["produce_partitions"]
        .join(intact.select(PAIR_KEY), on=PAIR_KEY, how="semi")
        .sort([*PAIR_KEY, "topic", "partition"])
    )
    got = (
        tables["produce_partitions"]
        .join(intact.select(PAIR_KEY), on=PAIR_KEY, how="semi")
        .sort([*PAIR_KEY, "topic", "partition"])
    )
    assert got.select(cols).equals(want.select(cols))
    # damage to requests after the first corruption is accounted, never silent
    damaged_conns = {c for c in first}
    later = [
        r
        for r in reqs.iter_rows(named=True)
        if _conn_of(r) in damaged_conns and r["response_position"] >= first[_conn_of(r)]
    ]
    if later:
        problems = [e for e in ctx.errors if e.severity in ("error", "data_loss")]
        crc_bad = (
            tables["produce_partitions"].filter(~pl.col("crc_valid")).height if "produce_partitions" in tables else 0
        )
        assert problems or crc_bad or tables["kafka_requests"].height == reqs.height


def test_duplicated_packets_change_nothing(clean, tmp_path):
    doubled = tmp_path / "doubled.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(doubled), str(CAPTURE), str(CAPTURE)], check=True)
    tables, ctx = _ingest(doubled)
    for table, key in (("kafka_requests", PAIR_KEY), ("produce_partitions", [*PAIR_KEY, "topic", "partition"])):
        cols = [c for c in clean[table].columns if "position" not in c]
        assert tables[table].sort(key).select(cols).equals(clean[table].sort(key).select(cols))
    payload = sum(1 for buf, _ in _packets(CAPTURE) if len(dpkt.ethernet.Ethernet(buf).data.data.data))
    stats = [e.message for e in ctx.errors if e.what == "tcp_stats"]
    assert len(stats) == 1 and stats[0].startswith(f"{payload} retransmitted segments")  # every copy, counted


def test_dropped_packets_are_counted_as_loss(clean, tmp_path):
    dropped = tmp_path / "dropped.pcap"
    payload = [n for n, (buf, _) in enumerate(_packets(CAPTURE), 1) if len(dpkt.ethernet.Ethernet(buf).data.data.data)]
    drop = [n for n in payload if n > 40][::20]  # every 20th data-carrying packet after packet 40
    subprocess.run(["editcap", "-F", "pcap", str(CAPTURE), str(dropped), *map(str, drop)], check=True)
    tables, ctx = _ingest(dropped)
    losses = [e for e in ctx.errors if e.severity == "data_loss"]
    assert losses, "dropped packets must show as data_loss"
    assert any("missing from the capture" in e.message for e in losses)
    # pairs completed before the first dropped packet are all there
    early = clean["kafka_requests"].filter(pl.col("response_position") < drop[0])
    found = tables["kafka_requests"].join(early.select(PAIR_KEY), on=PAIR_KEY, how="semi")
    assert found.height == early.height > 0


def test_skipped_bytes_never_exceed_the_capture():
    path = REPO / "tests" / "robustness" / "regressions" / "pcap-editcap-E0.05.pcapng"
    _, ctx = _ingest(path)
    assert not [e for e in ctx.errors if e.what in ("parser_crash", "parser_bug")]
    assert 0 < ctx.bytes_skipped <= path.stat().st_size
