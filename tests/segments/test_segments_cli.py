"""``kforensics dump segment``: Kafka dump-log style output, and the write question."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pipeline.cli import cli

pytest.importorskip("kafka")
from segments_testlib import GENERATED, reference_batches  # noqa: E402
from test_segments_ingest import ORDERS  # noqa: E402

SRC = GENERATED / ORDERS
REF = reference_batches(SRC.read_bytes()) if SRC.exists() else []


def run(*args):
    return CliRunner().invoke(cli, ["dump", "segment", str(SRC), *map(str, args)])


def test_dump_prints_every_batch_like_kafka():
    res = run("--batches-only")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[:2] == [f"Dumping {SRC}", "Log starting offset: 100"]
    assert len(lines) == 2 + 22
    assert lines[2] == (
        "baseOffset: 100 lastOffset: 103 count: 4 baseSequence: 0 lastSequence: 3 producerId: 4001 producerEpoch: 2 "
        "partitionLeaderEpoch: 7 isTransactional: false isControl: false position: 0 CreateTime: 1763651234030 "
        "size: 509 magic: 2 compresscodec: none crc: 2264757767 isvalid: true"
    )
    assert "isTransactional: true isControl: true position: 1553" in lines[2 + 7]
    assert "LogAppendTime: 1763652233999" in lines[2 + 9]


def test_position_and_bytes_give_exactly_the_covering_batches_and_message_ids():
    k = 1
    res = run("--position", REF[k]["position"], "--bytes", REF[k]["size"] + REF[k + 1]["size"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()[2:]
    assert len(lines) == 2
    assert lines[0].startswith("baseOffset: 104 lastOffset: 107 ")
    assert lines[0].endswith(
        "compresscodec: gzip crc: 4292549922 isvalid: true messageIds: [msg-000004, msg-000005, msg-000006, msg-000007]"
    )
    assert lines[1].startswith("baseOffset: 108 lastOffset: 111 ") and "compresscodec: snappy" in lines[1]
    assert res.stderr == ""


def test_records_are_printed_with_headers():
    k = 8  # tombstone, null header value, integer message id, empty key/value
    res = run("--position", REF[k]["position"], "--bytes", REF[k]["size"], "--records")
    assert res.stdout.splitlines()[3:] == [
        "| offset: 123 CreateTime: 1763651234220 keySize: 4 valueSize: -1 sequence: -1 headerKeys: [message-id] headers: [message-id=msg-000022]",
        "| offset: 124 CreateTime: 1763651234221 keySize: -1 valueSize: 1 sequence: -1 headerKeys: [message-id, flag] headers: [message-id=987654321, flag]",
        "| offset: 125 CreateTime: 1763651234222 keySize: 0 valueSize: 0 sequence: -1 headerKeys: [] headers: []",
    ]


def test_a_range_off_a_batch_boundary_is_said_clearly():
    p = REF[4]["position"]
    res = run("--position", p + 10, "--bytes", 20)
    assert res.exit_code == 0
    assert res.stdout.splitlines()[2].startswith("baseOffset: 116 lastOffset: 119 ")
    assert res.stderr.strip() == (
        f"note: position {p + 10} is not a batch boundary: it is 10 bytes into the batch at {p} (offsets 116..119); "
        f"the range ends {REF[4]['size'] - 30} bytes before the end of the batch at {p}"
    )


def test_json_output():
    k = 5
    res = run("--position", REF[k]["position"], "--bytes", REF[k]["size"], "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["note"] is None and len(doc["batches"]) == 1
    b = doc["batches"][0]
    assert (b["base_offset"], b["producer_id"], b["transactional"], b["message_ids"]) == (
        120,
        5001,
        True,
        ["msg-000020"],
    )


def test_usage_errors():
    assert run("--position", 5).exit_code == 2
    assert run("--records", "--batches-only").exit_code == 2


def test_damage_is_printed_in_place(tmp_path):
    d = tmp_path / "t-0"
    d.mkdir()
    f = d / "00000000000000000100.log"
    f.write_bytes(SRC.read_bytes()[: REF[-1]["position"] + 30])
    res = CliRunner().invoke(cli, ["dump", "segment", str(f)])
    assert res.exit_code == 0
    assert res.stdout.splitlines()[-1] == (
        f"!! position: {REF[-1]['position']} skipped: 30 truncated_tail (info): partial batch at the end: 30 bytes; "
        f"the batch claims {REF[-1]['size']} bytes"
    )


def test_dump_a_real_broker_segment(corpus_dir):
    f = corpus_dir / "TestTopicPatient-0/00000000000000000000.log"
    res = CliRunner().invoke(cli, ["dump", "segment", str(f), "--records"])
    assert res.exit_code == 0
    assert res.stdout.splitlines()[2:4] == [
        "baseOffset: 0 lastOffset: 0 count: 1 baseSequence: 0 lastSequence: 0 producerId: 1 producerEpoch: 0 "
        "partitionLeaderEpoch: 0 isTransactional: false isControl: false position: 0 CreateTime: 1769792698283 "
        "size: 1901 magic: 2 compresscodec: none crc: 3321075021 isvalid: true messageIds: []",
        "| offset: 0 CreateTime: 1769792698283 keySize: -1 valueSize: 1831 sequence: 0 headerKeys: [] headers: []",
    ]
    res = CliRunner().invoke(cli, ["dump", "segment", str(f), "--position", "1901", "--bytes", "976", "--batches-only"])
    assert res.stdout.splitlines()[2].startswith("baseOffset: 1 lastOffset: 1 count: 1 ")
    assert res.stdout.splitlines()[2].endswith("size: 976 magic: 2 compresscodec: none crc: 2459829793 isvalid: true")


def test_inspect_summarises_a_segment(corpus_dir):
    f = corpus_dir / "__cluster_metadata-0/00000000000000000000.log"
    res = CliRunner().invoke(cli, ["inspect", str(f), "--format", "json"])
    assert res.exit_code == 0, res.output
    (doc,) = json.loads(res.stdout)
    assert (doc["kind"], doc["segment_batches_rows"], doc["segment_records_rows"], doc["errors"]) == (
        "segment",
        4814,
        4929,
        0,
    )


def test_a_write_over_a_damaged_batch(tmp_path):
    d = tmp_path / "t-0"
    d.mkdir()
    f = d / "00000000000000000100.log"
    data = bytearray(SRC.read_bytes())
    k = 2
    data[REF[k]["position"] + 16] = 9  # bad magic, sane length
    f.write_bytes(bytes(data))
    p = REF[k - 1]["position"]
    n = REF[k - 1]["size"] + REF[k]["size"] + REF[k + 1]["size"]
    res = CliRunner().invoke(cli, ["dump", "segment", str(f), "--position", p, "--bytes", n])
    lines = res.stdout.splitlines()[2:]
    assert [line.split(" lastOffset")[0] for line in lines] == [
        "baseOffset: 104",
        f"!! position: {REF[k]['position']} skipped: {REF[k]['size']} corrupt_batch (error): corrupt batch (bad magic 9) "
        f"of {REF[k]['size']} bytes skipped by its length; next batch at {REF[k + 1]['position']}",
        "baseOffset: 112",
    ]


def test_offset_finds_the_batch_holding_it():
    from pipeline.ingest.segments import batch_holding_offset

    # from the .index (entries past offset 130) and from the start
    for off, base in ((100, 100), (127, 126), (150, 150), (164, 162)):
        b = batch_holding_offset(SRC, off)
        assert b.base_offset == base
    assert batch_holding_offset(SRC, 165) is None and batch_holding_offset(SRC, 5) is None
    res = run("--offset", 121)
    assert res.exit_code == 0
    assert res.stdout.splitlines()[2].startswith("baseOffset: 121 lastOffset: 121 count: 1 baseSequence: 1 ")
    assert res.stdout.splitlines()[2].endswith("messageIds: [msg-000021]")
    res = run("--offset", 999)
    assert res.exit_code == 1 and "no batch in 00000000000000000100.log holds offset 999" in res.stderr
    assert run("--offset", 121, "--position", 0, "--bytes", 1).exit_code == 2
