"""Segment ingest: the real broker data directory and segments written by a real client
library laid out as a broker does, every value equal to kafka-python's reader."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import polars as pl
import pytest

from pipeline.ingest.segments import SegmentParser, batches_covering, partition_of
from pipeline.manifest import Manifest
from pipeline.registry import ParseContext, Probe, detect
from pipeline.runner import check_frame

pytest.importorskip("kafka")
from segments_testlib import GENERATED, reference_batches  # noqa: E402

CODEC_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")


def parse(path: Path, name: str | None = None, manifest: Manifest | None = None):
    name = name or f"{path.parent.name}/{path.name}"
    ctx = ParseContext(path, name, "test", manifest or Manifest())
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, frame in SegmentParser().parse(ctx):
        frames.setdefault(table, []).append(check_frame(SegmentParser, table, frame))
    tables = {t: pl.concat(fs) for t, fs in frames.items()}
    for t in SegmentParser.tables:
        tables.setdefault(t, pl.DataFrame())
    return tables, ctx


def assert_equals_reference(path: Path, tables: dict[str, pl.DataFrame]) -> int:
    """Every batch and record field equals kafka-python's reading; returns the batch count."""
    ref = reference_batches(path.read_bytes())
    rows = tables["segment_batches"].sort("position").to_dicts()
    assert len(rows) == len(ref)
    for row, r in zip(rows, ref, strict=True):
        assert row["position"] == row["file_position"] == r["position"]
        assert row["batch_bytes"] == r["size"]
        assert (row["base_offset"], row["last_offset"]) == (r["base_offset"], r["last_offset"])
        assert (row["magic"], row["crc"], row["crc_valid"]) == (r["magic"], r["crc"], r["crc_valid"])
        assert row["compression"] == CODEC_NAMES[r["compression"]]
        assert row["records"] == r["count"]
        if r["magic"] == 2:
            assert row["timestamp_type"] == ("LogAppendTime" if r["timestamp_type"] else "CreateTime")
            assert (row["first_timestamp_raw"], row["max_timestamp_raw"]) == (r["first_timestamp"], r["max_timestamp"])
            assert (row["producer_id"], row["producer_epoch"], row["base_sequence"]) == (
                r["producer_id"],
                r["producer_epoch"],
                r["base_sequence"],
            )
            assert (row["transactional"], row["control"]) == (r["transactional"], r["control"])
            assert row["partition_leader_epoch"] == r["leader_epoch"]
    recs = tables["segment_records"]
    want = [
        (
            r["position"],
            rec.offset,
            rec.timestamp if r["magic"] else None,
            None if rec.key is None else len(rec.key),
            None if rec.value is None else len(rec.value),
        )
        for r in ref
        for rec in r["records"]
    ]
    got = (
        recs.select("batch_position", "offset", "timestamp_raw", "key_bytes", "value_bytes").rows()
        if recs.height
        else []
    )
    assert got == want
    return len(ref)


# -- the corpus: a real KRaft broker's data directory -----------------------------------------


@pytest.mark.parametrize(
    ("log", "batches", "records", "first", "last"),
    [
        ("TestTopicPatient-0/00000000000000000000.log", 3, 3, 0, 2),
        ("__cluster_metadata-0/00000000000000000000.log", 4814, 4929, 0, 4928),
        ("__consumer_offsets-6/00000000000000000000.log", 13, 13, 0, 12),
    ],
)
def test_corpus_segments_equal_reference(corpus_dir, log, batches, records, first, last):
    path = corpus_dir / log
    tables, ctx = parse(path)
    assert ctx.errors == [] and ctx.bytes_skipped == 0
    b = tables["segment_batches"]
    assert assert_equals_reference(path, tables) == batches
    assert (b["records"].sum(), b["base_offset"].min(), b["last_offset"].max()) == (records, first, last)
    assert tables["segment_records"].height == records
    topic, partition = partition_of(log)
    assert b["topic"].unique().to_list() == [topic] and b["partition"].unique().to_list() == [partition]
    assert b["segment"].unique().to_list() == ["00000000000000000000.log"]


def test_corpus_values(corpus_dir):
    tables, _ = parse(corpus_dir / "TestTopicPatient-0/00000000000000000000.log")
    b = tables["segment_batches"]
    assert b["topic_id"].to_list() == ["B3_HiNPgSQ6oxG9ZZ6ED5A"] * 3
    assert b.select("position", "batch_bytes", "producer_id", "crc").rows() == [
        (0, 1901, 1, 3321075021),
        (1901, 976, 2, 2459829793),
        (2877, 394, 3, 3160044214),
    ]
    assert str(b["first_timestamp_at"][0]) == "2026-01-30 17:04:58.283000"
    assert str(b["max_timestamp_at"][2]) == "2026-01-30 17:19:38.165000"
    meta, _ = parse(corpus_dir / "__cluster_metadata-0/00000000000000000000.log")
    control = meta["segment_batches"].filter(pl.col("control"))
    # KRaft's first record: a LEADER_CHANGE control record (ControlRecordType 2)
    assert control.select("position", "base_offset", "control_type").rows() == [(0, 0, "LEADER_CHANGE")]
    ref = reference_batches((corpus_dir / "__cluster_metadata-0/00000000000000000000.log").read_bytes())
    assert ref[0]["control"] and ref[0]["records"][0].type == 2


def test_corpus_index_files_agree_with_the_batches(corpus_dir):
    """__consumer_offsets-6 has a real .index (2 entries) and .timeindex (3 entries)."""
    from pipeline.ingest.segments import check_indexes, read_offset_index, read_time_index

    log = corpus_dir / "__consumer_offsets-6/00000000000000000000.log"
    assert read_offset_index(log.with_suffix(".index")) == [(3, 4730), (7, 9571)]
    assert read_time_index(log.with_suffix(".timeindex")) == [
        (1769791783399, 3),
        (1769792518093, 7),
        (1769793578176, 12),
    ]
    tables, ctx = parse(log)
    batches = tables["segment_batches"].select("position", "base_offset", "last_offset", "max_timestamp_raw").rows()
    check = check_indexes(log, 0, batches)
    assert (check.problems, check.offset_entries, check.time_entries) == ([], 2, 3)


def test_corpus_files_are_recognised(corpus_dir):
    kinds = {}
    for f in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
        name = f.relative_to(corpus_dir).as_posix()
        parser = detect(Probe.of(f, name))
        kinds[name] = (parser.kind, parser.skip_reason is not None) if parser else None
    logs = ("TestTopicPatient-0", "__cluster_metadata-0", "__consumer_offsets-6")
    for d in logs:
        assert kinds.pop(f"{d}/00000000000000000000.log") == ("segment", False)
        assert kinds.pop(f"{d}/leader-epoch-checkpoint") == ("kafka-log-dir-file", True)
    assert kinds.pop("TestTopicPatient-0/partition.metadata") == ("partition-metadata", True)
    assert kinds.pop("__consumer_offsets-6/00000000000000000000.index") == ("segment-index", True)
    assert kinds.pop("__consumer_offsets-6/00000000000000000000.timeindex") == ("segment-index", True)
    rest = set(kinds.values())
    assert rest == {("kafka-log-dir-file", True)}, kinds
    assert sorted(kinds) == [
        "__cluster_metadata-0/quorum-state",
        "__consumer_offsets-6/00000000000000000013.snapshot",
        "bootstrap.checkpoint",
        "meta.properties",
        "recovery-point-offset-checkpoint",
        "replication-offset-checkpoint",
    ]


def test_corpus_bundle_through_the_runner(corpus_dir, tmp_path):
    from pipeline.bundle import open_bundle
    from pipeline.progress import Progress
    from pipeline.runner import ingest_bundle
    from pipeline.store import Store

    with Store(tmp_path / "out") as store:
        bundle = open_bundle(corpus_dir, tmp_path / "out")
        with Progress(quiet=True) as progress:
            summary = ingest_bundle(bundle, store, progress=progress)
        status = store.frame("select kind, status, count(*) n, sum(rows) r from artifacts group by all order by kind")
        per_topic = store.frame(
            "select topic, count(*) n, count(distinct message_id) m from segment_records group by topic order by topic"
        )
    assert summary.exit_code == 0
    assert status.rows() == [
        ("kafka-log-dir-file", "skipped", 9, 0),
        ("partition-metadata", "skipped", 1, 0),
        ("segment", "ok", 3, 3 + 3 + 4814 + 4929 + 13 + 13),
        ("segment-index", "skipped", 2, 0),
    ]
    assert per_topic.rows() == [
        ("TestTopicPatient", 3, 0),
        ("__cluster_metadata", 4929, 0),
        ("__consumer_offsets", 13, 0),
    ]


# -- generated: batches built by kafka-python, laid out as a broker does ---------------------------

ORDERS = "orders.eu-west_1-3/00000000000000000100.log"
LEGACY = "legacy-topic-0/00000000000000000000.log"


@pytest.fixture(params=["committed", "regenerated"])
def generated_dir(request, gen, tmp_path) -> Path:
    if request.param == "committed":
        return GENERATED
    gen.main(tmp_path)
    return tmp_path


def test_generated_orders_equal_reference(generated_dir):
    path = generated_dir / ORDERS
    tables, ctx = parse(path)
    assert ctx.errors == []
    assert assert_equals_reference(path, tables) == 22
    b = tables["segment_batches"]
    assert b["topic"].unique().to_list() == ["orders.eu-west_1"] and b["partition"].unique().to_list() == [3]
    assert b["topic_id"].unique().to_list() == ["w2rR7SxsTqKTXtfF2-dqjA"]
    assert b["segment_base_offset"].unique().to_list() == [100]
    assert b["partition_leader_epoch"].unique().to_list() == [7]
    assert b["compression"].head(5).to_list() == ["none", "gzip", "snappy", "lz4", "zstd"]
    assert b.filter(pl.col("control")).select("base_offset", "producer_id", "transactional", "control_type").rows() == [
        (122, 5001, True, "COMMIT")
    ]
    assert b.filter(pl.col("timestamp_type") == "LogAppendTime").select("base_offset", "max_timestamp_raw").rows() == [
        (126, 1763651234000 + 999_999)
    ]
    r = tables["segment_records"]
    assert r.height == 20 + 2 + 1 + 3 + 3 + 36
    assert r["message_id"].head(3).to_list() == ["msg-000000", "msg-000001", "msg-000002"]
    odd = r.filter(pl.col("offset").is_between(123, 125))
    assert odd.select("key_bytes", "value_bytes", "headers", "message_id").rows() == [
        (4, None, ["message-id=msg-000022"], "msg-000022"),
        (None, 1, ["message-id=987654321", "flag"], "987654321"),
        (0, 0, [], None),
    ]
    assert r.filter(pl.col("offset") == 100)["headers"].to_list() == [
        ["message-id=msg-000000", "trace=1234605616436508552"]
    ]
    lat = r.filter(pl.col("offset").is_between(126, 128))
    assert lat["timestamp_raw"].to_list() == [1763651234000 + 999_999] * 3
    assert str(r.filter(pl.col("offset") == 100)["timestamp_at"][0]) == "2025-11-20 15:07:14"


def test_generated_legacy_equal_reference(generated_dir):
    path = generated_dir / LEGACY
    tables, ctx = parse(path)
    assert ctx.errors == []
    assert assert_equals_reference(path, tables) == 9
    b = tables["segment_batches"]
    assert b.select("magic", "compression", "base_offset", "last_offset", "records").rows() == [
        (0, "none", 0, 0, 1),
        (0, "none", 1, 1, 1),
        (0, "gzip", 2, 4, 3),
        (1, "none", 5, 5, 1),
        (1, "none", 6, 6, 1),
        (1, "snappy", 7, 9, 3),
        (1, "lz4", 10, 11, 2),
        (1, "gzip", 12, 13, 2),
        (2, "none", 14, 14, 1),
    ]
    assert b["timestamp_type"].to_list()[:4] == [None, None, None, "CreateTime"]
    assert b["first_timestamp_at"].null_count() == 3  # magic 0 has no timestamps
    assert b.filter(pl.col("magic") < 2)["partition_leader_epoch"].unique().to_list() == [-1]


def test_message_id_header_from_the_manifest(gen, tmp_path):
    path = GENERATED / ORDERS
    tables, _ = parse(path, manifest=Manifest(message_id_header="trace"))
    r = tables["segment_records"]
    assert r.filter(pl.col("offset") == 101)["message_id"].to_list() == ["1234605616436508553"]
    assert r.filter(pl.col("offset") == 120)["message_id"].to_list() == [None]


def test_clock_offset_moves_instants_not_raw_values(tmp_path):
    tables, _ = parse(GENERATED / ORDERS, manifest=Manifest(clock_offsets_ms={"segment": 1500.0}))
    b = tables["segment_batches"].row(0, named=True)
    assert b["first_timestamp_raw"] == 1763651234000
    assert str(b["first_timestamp_at"]) == "2025-11-20 15:07:15.500000"


def test_headers_only_mode(monkeypatch):
    monkeypatch.setattr(SegmentParser, "decode_records", False)
    tables, ctx = parse(GENERATED / ORDERS)
    assert tables["segment_batches"].height == 22 and tables["segment_records"].height == 0 and ctx.errors == []


def test_gzipped_segment(tmp_path):
    import gzip

    d = tmp_path / "orders.eu-west_1-3"
    d.mkdir()
    (d / "00000000000000000100.log").write_bytes(gzip.compress((GENERATED / ORDERS).read_bytes()))
    tables, ctx = parse(d / "00000000000000000100.log")
    assert tables["segment_batches"].height == 22 and ctx.errors == []
    # named .log.gz, with its index beside it
    f = d / "00000000000000000100.log.gz"
    (d / "00000000000000000100.log").rename(f)
    idx = bytearray((GENERATED / ORDERS).with_suffix(".index").read_bytes())
    struct.pack_into(">i", idx, 4, 1)  # entry 0 now points at position 1: the cross-check must see it
    (d / "00000000000000000100.index").write_bytes(bytes(idx))
    assert detect(Probe.of(f, "orders.eu-west_1-3/00000000000000000100.log.gz")) is SegmentParser
    tables, ctx = parse(f)
    assert tables["segment_batches"]["segment"].unique().to_list() == ["00000000000000000100.log"]
    assert [(e.position, e.what) for e in ctx.errors] == [(1, "index_mismatch")]


def test_empty_segment(tmp_path):
    d = tmp_path / "t-0"
    d.mkdir()
    (d / "00000000000000000000.log").write_bytes(b"")
    assert detect(Probe.of(d / "00000000000000000000.log", "t-0/00000000000000000000.log")) is SegmentParser
    tables, ctx = parse(d / "00000000000000000000.log")
    assert tables["segment_batches"].height == 0 and ctx.errors == []


def test_partition_names_split_at_the_last_dash():
    assert partition_of("data/my.topic-with-dashes_and_underscores-12/00000000000000000000.log") == (
        "my.topic-with-dashes_and_underscores",
        12,
    )
    assert partition_of("orders-7.3b1f0c9d2e8a4f6b8c0d1e2f3a4b5c6d-delete/00000000000000000000.log") == ("orders", 7)
    assert partition_of("orders-7.3b1f0c9d2e8a4f6b8c0d1e2f3a4b5c6d-future/00000000000000000000.log") == ("orders", 7)
    assert partition_of("00000000000000000000.log") is None
    assert partition_of("topic/00000000000000000000.log") is None


def test_batches_covering_answers_the_write_question(tmp_path):
    """A write of N bytes at P: exactly the batches in that range, with message ids."""
    src = GENERATED / ORDERS
    ref = reference_batches(src.read_bytes())
    k = 5  # the first transactional batch
    p, n = ref[k]["position"], ref[k]["size"] + ref[k + 1]["size"]
    cov = batches_covering(src, p, n)
    assert [b.position for b in cov.batches] == [ref[k]["position"], ref[k + 1]["position"]]
    assert cov.starts_on_boundary and cov.ends_on_boundary and cov.note is None
    assert [cov.message_ids[b.position] for b in cov.batches] == [["msg-000020"], ["msg-000021"]]
    # the same from bytes in memory and without an index beside the file
    cov2 = batches_covering(src.read_bytes(), p, n, records=False)
    assert [b.base_offset for b in cov2.batches] == [120, 121] and cov2.records == {}
    # a range that starts inside a batch says so
    cov3 = batches_covering(src, p + 5, 10)
    assert [b.position for b in cov3.batches] == [p]
    assert (
        cov3.note
        == f"position {p + 5} is not a batch boundary: it is 5 bytes into the batch at {p} (offsets 120..120); the range ends {ref[k]['size'] - 15} bytes before the end of the batch at {p}"
    )
    # deep in the file, the walk starts from the .index
    last = ref[-1]
    cov4 = batches_covering(src, last["position"], last["size"])
    assert [b.base_offset for b in cov4.batches] == [162] and cov4.message_ids[last["position"]] == [
        "msg-000061",
        "msg-000062",
        "msg-000063",
    ]
    assert batches_covering(src, src.stat().st_size + 10, 5).note.startswith("no batch covers bytes")


def test_copy_corpus_is_not_modified(corpus_dir):
    # parsing never writes next to the input
    before = sorted(p.name for p in corpus_dir.rglob("*"))
    parse(corpus_dir / "TestTopicPatient-0/00000000000000000000.log")
    assert sorted(p.name for p in corpus_dir.rglob("*")) == before


def test_preallocated_index_files(tmp_path):
    """An active segment's index files are preallocated (10 MiB) and zero-filled."""
    from pipeline.ingest.segments import read_offset_index, read_time_index

    d = tmp_path / "orders.eu-west_1-3"
    d.mkdir()
    shutil.copyfile(GENERATED / ORDERS, d / "00000000000000000100.log")
    for ext in (".index", ".timeindex"):
        raw = (GENERATED / ORDERS).with_suffix(ext).read_bytes()
        (d / f"00000000000000000100{ext}").write_bytes(raw + bytes(10 * 1024 * 1024 - len(raw)))
    log = d / "00000000000000000100.log"
    assert read_offset_index(log.with_suffix(".index")) == read_offset_index((GENERATED / ORDERS).with_suffix(".index"))
    assert len(read_offset_index(log.with_suffix(".index"))) == 6
    assert len(read_time_index(log.with_suffix(".timeindex"))) == 2
    _, ctx = parse(log)
    assert ctx.errors == []


def test_a_segment_outside_a_partition_directory_is_read_by_content(corpus_dir, tmp_path):
    """The corpus files as stored (flattened names, no partition directory): recognised by
    their first batch's CRC; topic and partition unknown, said once as info."""
    from segments_testlib import CORPUS, CORPUS_PREFIX

    flat = CORPUS / f"{CORPUS_PREFIX}__consumer_offsets-6_00000000000000000000.log"
    assert detect(Probe.of(flat, flat.name)) is SegmentParser
    tables, ctx = parse(flat, name=flat.name)
    b = tables["segment_batches"]
    assert b.height == 13 and b["topic"].null_count() == 13 and b["partition"].null_count() == 13
    assert b["segment_base_offset"].unique().to_list() == [0]
    assert [(e.position, e.severity, e.what) for e in ctx.errors] == [(0, "info", "no_partition_dir")]
    # text files named .log (broker or GC logs) are not segments
    for text in (b"[2026-01-30 16:43:51,000] INFO starting (kafka.server.KafkaServer)\n" * 40, bytes(200)):
        f = tmp_path / "server.log"
        f.write_bytes(text)
        assert detect(Probe.of(f, "server.log")) is not SegmentParser


def test_frames_come_in_chunks(monkeypatch):
    import pipeline.ingest.segments as seg

    whole, _ = parse(GENERATED / ORDERS)
    monkeypatch.setattr(seg, "CHUNK_ROWS", 5)
    ctx = ParseContext(GENERATED / ORDERS, ORDERS, "test")
    chunks = [(t, f.height) for t, f in SegmentParser().parse(ctx)]
    assert max(h for _, h in chunks) <= 5 + 4  # a batch's records go into one chunk
    assert sum(h for t, h in chunks if t == "segment_batches") == 22
    assert sum(h for t, h in chunks if t == "segment_records") == 65
    chunked, _ = parse(GENERATED / ORDERS)
    assert chunked["segment_records"].equals(whole["segment_records"])


def test_manifest_can_ask_for_batch_headers_only():
    path = GENERATED / ORDERS
    full, _ = parse(path)
    headers_only, ctx = parse(path, manifest=Manifest(segment_records=False))
    assert ctx.errors == []
    assert full["segment_records"].height == 65 and headers_only["segment_records"].height == 0
    assert headers_only["segment_batches"].equals(full["segment_batches"])
