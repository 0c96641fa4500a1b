"""``kforensics dump pcap`` and ``kforensics inspect`` on a capture, plus one live capture
of a real client (needs root and tcpdump) checked against tshark."""

from __future__ import annotations

import os
import shutil
import time

import polars as pl
import pytest
from click.testing import CliRunner
from wire_helpers import FIXTURES

from pipeline.cli import cli
from pipeline.ingest.pcap import CaptureParser


def test_dump_pcap_produce_seed_layout():
    out = CliRunner().invoke(cli, ["dump", "pcap", "--produce", str(FIXTURES / "kcat.pcap")])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == [
        "00:35:17.247  00:35:17.248      0.287  kcat-snappy    orders  0",
        "00:35:17.284  00:35:17.285      0.289  kcat-gzip      orders  1",
        "00:35:17.316  00:35:17.316      0.322  kcat-lz4       orders  2",
    ]
    ids = CliRunner().invoke(cli, ["dump", "pcap", "--produce", "--all-ids", str(FIXTURES / "kcat.pcap")])
    assert len(ids.stdout.splitlines()) == 12


def test_dump_pcap_requests_and_damage_on_stderr():
    out = CliRunner().invoke(cli, ["dump", "pcap", "--port", "29181", str(FIXTURES / "midstream.pcap")])
    assert out.exit_code == 0
    assert len(out.stdout.splitlines()) == 44
    assert out.stderr.count("midstream_start") == 2
    acks0 = CliRunner().invoke(cli, ["dump", "pcap", "--produce", str(FIXTURES / "librdkafka_v7.pcap")])
    assert "00:35:12.890  ------------          -  ord-snappy-0   orders  0" in acks0.stdout


def test_inspect_summarises_connections_apis_and_latency():
    out = CliRunner().invoke(cli, ["inspect", str(FIXTURES / "librdkafka_v7.pcap")])
    assert out.exit_code == 0, out.output
    for title in ("connections", "APIs by count and version", "produce latency (ms)", "produce partitions by topic"):
        assert title in out.stdout


def test_summarise_frames():
    from wire_helpers import parsed

    tables, _ = parsed("librdkafka.pcap")
    frames = dict(CaptureParser.summarise(tables))
    assert frames["connections"].height == 10
    apis = frames["APIs by count and version"]
    assert apis.select("api_name", "api_version", "requests").rows() == [
        ("Produce", 10, 30),
        ("Metadata", 12, 11),
        ("ApiVersions", 3, 10),
    ]
    lat = frames["produce latency (ms)"].row(0, named=True)
    prod = tables["kafka_requests"].filter(pl.col("api_key") == 0)["latency_ms"]
    assert lat["requests"] == 30 and lat["max"] == prod.max() and lat["min"] == prod.min()


@pytest.mark.slow
@pytest.mark.needs_tool
@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("tcpdump") or not shutil.which("tshark"),
    reason="live capture needs root, tcpdump and tshark",
)
def test_live_capture_of_a_real_client_agrees_with_tshark(tmp_path):
    pytest.importorskip("confluent_kafka")
    import sys

    sys.path.insert(0, str(FIXTURES))
    import make_captures
    from wire_reference import tshark_pdus
    from wire_responder import Responder

    port = 29000 + int(time.time()) % 900
    responder = Responder(port).start()
    out = tmp_path / "live.pcap"
    try:
        with make_captures.Capture(out, port):
            make_captures.run_confluent(port, ("zstd", "gzip"), n=3)
    finally:
        responder.close()
    from wire_helpers import parsed

    tables, ctx = parsed(str(out), (port,))
    reqs = tables["kafka_requests"]
    pdus = tshark_pdus(out, (port,))
    theirs = sorted(
        (d["sport"], d["corr"], d["key"], d["version"], d["response_frame"]) for d in pdus if d["kind"] == "request"
    )
    ours = sorted(reqs.select("client_port", "correlation_id", "api_key", "api_version", "response_position").rows())
    assert ours == theirs
    parts = tables["produce_partitions"]
    assert parts.height == 12 and parts["records"].sum() == 12
    assert sorted(parts["compression"].unique()) == ["gzip", "zstd"]


def test_ingest_a_bundle_into_duckdb(tmp_path):
    bundle = tmp_path / "bundle"
    (bundle / "captures").mkdir(parents=True)
    for name in ("kcat.pcap", "loss.pcap"):
        (bundle / "captures" / name).write_bytes((FIXTURES / name).read_bytes())
    (bundle / "bundle.toml").write_text("kafka_ports = [29181, 29184]\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["-q", "ingest", str(bundle), "-o", str(out)])
    assert res.exit_code == 1, res.output  # loss.pcap is partial
    import duckdb

    con = duckdb.connect(str(out / "incident.duckdb"), read_only=True)
    try:
        status = con.sql("select path, status, rows, bytes_skipped from artifacts where kind = 'pcap' order by path")
        # the 1273 bytes the capture never held are data loss, not bytes of the file skipped
        assert status.fetchall() == [("captures/kcat.pcap", "ok", 12, 0), ("captures/loss.pcap", "partial", 79, 0)]
        lost = con.sql("select count(*) from ingest_errors where severity = 'data_loss'").fetchall()
        assert lost == [(3,)]
        gaps = con.sql(
            "select sum(regexp_extract(message, ': (\\d+) bytes from', 1)::int) from ingest_errors where what = 'tcp_gap'"
        ).fetchall()
        assert gaps == [(1273,)]
        seed = con.sql(
            "select strftime(arrival_at, '%H:%M:%S.%g'), round(latency_ms, 3), message_ids[1], topic, partition "
            "from produce_partitions where client_port = 60266"
        ).fetchall()
        assert seed == [("00:35:17.247", 0.287, "kcat-snappy", "orders", 0)]
    finally:
        con.close()
