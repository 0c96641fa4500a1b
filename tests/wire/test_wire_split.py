"""One capture split over worker processes gives the serial run's output exactly: the same
rows in the same order, the same errors in the same order, skipped bytes and hints."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from wire_helpers import FIXTURES, PORTS

from bench.bench_wire import make_capture
from pipeline.bundle import open_bundle
from pipeline.ingest import pcap
from pipeline.manifest import Manifest
from pipeline.progress import Progress
from pipeline.registry import ParseContext
from pipeline.runner import ingest_bundle
from pipeline.store import Store


def run(path: Path, ports: tuple[int, ...], jobs: int):
    ctx = ParseContext(path, path.name, "t", manifest=Manifest(kafka_ports=ports))
    ctx.jobs = jobs
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, frame in pcap.CaptureParser().parse(ctx):
        frames.setdefault(table, []).append(frame)
    return {t: pl.concat(fs) for t, fs in frames.items()}, ctx


def assert_same(path: Path, ports: tuple[int, ...], jobs: int) -> dict[str, pl.DataFrame]:
    serial, sctx = run(path, ports, 1)
    split, pctx = run(path, ports, jobs)
    assert serial.keys() == split.keys() == {"kafka_requests", "produce_partitions"}
    for table, frame in serial.items():
        assert frame.schema == split[table].schema
        assert frame.rows() == split[table].rows(), table
    assert sctx.errors == pctx.errors
    assert sctx.bytes_skipped == pctx.bytes_skipped
    assert sctx.hints == pctx.hints
    return serial


@pytest.fixture(autouse=True)
def split_small(monkeypatch):
    monkeypatch.setenv("KFORENSICS_SPLIT_MIN_BYTES", "0")


def test_split_only_for_large_captures_with_known_ports(tmp_path, monkeypatch):
    path = FIXTURES / "librdkafka.pcap"
    ctx = ParseContext(path, path.name, "t", manifest=Manifest(kafka_ports=(29181,)))
    assert pcap._split_shares(ctx) == 1  # jobs not given: serial
    ctx.jobs = 2
    assert pcap._split_shares(ctx) == 2
    monkeypatch.setenv("KFORENSICS_SPLIT_MIN_BYTES", str(path.stat().st_size + 1))
    assert pcap._split_shares(ctx) == 1
    monkeypatch.setenv("KFORENSICS_SPLIT_MIN_BYTES", "0")
    assert pcap._split_shares(ParseContext(path, path.name, "t")) == 1  # ports unknown
    other = tmp_path / "x.bin"
    other.write_bytes(b"not a capture at all")
    bad = ParseContext(other, other.name, "t", manifest=Manifest(kafka_ports=(29181,)))
    bad.jobs = 2
    assert pcap._split_shares(bad) == 1


def test_share_is_the_same_for_both_directions():
    a, b = bytes([10, 0, 0, 7]), bytes([127, 0, 0, 1])
    seen = {pcap._share_of(a, p, b, 29181, 2) for p in range(40000, 40064)}
    assert seen == {0, 1}
    for p in range(40000, 40064):
        assert pcap._share_of(a, p, b, 29181, 3) == pcap._share_of(b, 29181, a, p, 3)


def test_many_connections_split_like_serial(tmp_path):
    cap = tmp_path / "many.pcap"
    assert make_capture(cap, 3000) == 3152  # 16 copies of the 10-connection librdkafka capture
    serial = assert_same(cap, (29181,), 2)
    assert serial["kafka_requests"].height == 16 * 51
    assert serial["produce_partitions"].height == 16 * 30
    assert serial["kafka_requests"]["conn_id"].n_unique() == 16 * 10


@pytest.mark.parametrize(
    ("name", "jobs"),
    [
        ("librdkafka.pcap", 2),  # Metadata topic ids (hints), every codec
        ("loss.pcap", 2),  # gaps: lost frames, resynchronisation
        ("reorder.pcap", 3),  # out-of-order segments and retransmissions (tcp_stats)
        ("midstream.pcap", 2),  # capture starting inside a request
        ("librdkafka_v7.pcap.gz", 2),  # gzip-compressed capture, acks=0
        ("sll2_ns.pcap", 2),  # another link type, real capture loss
    ],
)
def test_fixture_split_like_serial(name, jobs):
    assert_same(FIXTURES / name, (PORTS[name],), jobs)


def test_split_damaged_and_reused_tuples(tmp_path):
    assert_same(FIXTURES / "kcat_reuse.pcap", (29184,), 2)  # one 4-tuple, three connections
    assert_same(FIXTURES / "kcat_snaplen.pcap", (29184,), 2)  # segments cut by the snapshot length
    raw = (FIXTURES / "librdkafka.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) * 2 // 3])  # the last record cut short: a file-level error
    assert_same(cut, (29181,), 2)
    _, sctx = run(cut, (29181,), 2)
    assert [e.what for e in sctx.errors].count("truncated_capture") == 1
    gz = (FIXTURES / "librdkafka_v7.pcap.gz").read_bytes()
    cut_gz = tmp_path / "cut.pcap.gz"
    cut_gz.write_bytes(gz[: len(gz) // 2])  # a gzip stream cut short: reported once
    assert_same(cut_gz, (29182,), 2)
    _, gctx = run(cut_gz, (29182,), 2)
    assert [e.what for e in gctx.errors if e.severity == "data_loss"][:1] == ["gzip_damaged"]


def test_v13_topics_named_with_what_was_learned_before_each_row():
    ctx = ParseContext(Path("/nonexistent/x.pcap"), "x.pcap", "t")
    main = pcap.WireIngest(ctx)
    frame = pl.DataFrame(
        {
            "topic": [None, None, "legacy", None],
            "topic_id": ["AAAA", "BBBB", None, "AAAA"],
            "__key_packet": [5, 9, 9, 20],
            "__key_order": [0, 0, 0, 0],
            "__key_seq": [1, 7, 8, 3],
        },
        schema_overrides={"topic": pl.Utf8},
    )
    learned = [((9, 0, 2), "BBBB", "payments"), ((6, 0, 1), "AAAA", "orders"), ((30, 0, 1), "CCCC", "late")]
    learned.sort(key=lambda e: e[0])
    named = pcap._name_topics(main, frame, learned, 20)
    assert named["topic"].to_list() == [None, "payments", "legacy", "orders"]
    assert learned == [((30, 0, 1), "CCCC", "late")]
    assert ctx.hints["topic_ids"] == {"AAAA": "orders", "BBBB": "payments"}


def test_ingest_command_splits_and_stores_the_same_tables(tmp_path, monkeypatch):
    """``kforensics ingest -j 2`` splits the capture (the runner passes its jobs on) and stores
    what ``-j 1`` stores."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.toml").write_text("kafka_ports = [29181]\n")
    make_capture(bundle / "wire.pcap", 2000)
    calls = []
    real = pcap._split_parse

    def spy(ctx, shares):
        calls.append(shares)
        return real(ctx, shares)

    monkeypatch.setattr(pcap, "_split_parse", spy)
    tables = {}
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        with Store(out) as store, Progress(quiet=True) as progress:
            ingest_bundle(open_bundle(bundle, out), store, progress=progress, jobs=jobs)
            store.export_parquet()
        tables[jobs] = {
            t: pl.read_parquet(out / "parquet" / f"{t}.parquet")
            for t in ("kafka_requests", "produce_partitions", "ingest_errors")
        }
    assert calls == [2]
    for t, frame in tables[1].items():
        assert frame.height > 0 or t == "ingest_errors"
        assert frame.rows() == tables[2][t].rows(), t
