"""Helpers for the segment tests: the corpus laid out as a log directory, the
fixture generator, and an independent reader (kafka-python's record parsing)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import CORPUS as SHARED_CORPUS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = SHARED_CORPUS / "segment"
GENERATED = ROOT / "fixtures" / "segments" / "generated"
CORPUS_PREFIX = "Niloufar1171__LDI-POC__"
T_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def load_generator():
    spec = importlib.util.spec_from_file_location("make_segments", ROOT / "fixtures" / "segments" / "make_segments.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_segments"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def gen():
    pytest.importorskip("kafka")
    return load_generator()


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    """The corpus broker data directory, its flattened names laid out again as
    ``<topic>-<partition>/<file>`` in a temporary folder."""
    if not CORPUS.is_dir():
        pytest.skip("shared corpus folder absent")
    out = tmp_path_factory.mktemp("kafka-data")
    for f in sorted(CORPUS.iterdir()):
        rest = f.name.removeprefix(CORPUS_PREFIX)
        m = re.match(r"^(.+-\d+)_(.+)$", rest)
        dest = out / m[1] / m[2] if m else out / rest
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, dest)
    return out


def reference_batches(data: bytes) -> list[dict]:
    """Batches and records as kafka-python's ``MemoryRecords`` reads them."""
    from kafka.record import MemoryRecords

    out = []
    mr = MemoryRecords(bytes(data))
    pos = 0
    while True:
        b = mr.next_batch()
        if b is None:
            break
        crc_valid = b.validate_crc()  # must come before iterating
        recs = list(b)
        d = {"position": pos, "size": b.size_in_bytes, "magic": b.magic, "records": recs, "crc_valid": crc_valid}
        if b.magic == 2:
            d.update(
                base_offset=b.base_offset,
                last_offset=b.last_offset,
                crc=b.crc,
                compression=b.compression_type,
                timestamp_type=b.timestamp_type,
                first_timestamp=b.first_timestamp,
                max_timestamp=b.max_timestamp,
                producer_id=b.producer_id,
                producer_epoch=b.producer_epoch,
                base_sequence=b.base_sequence,
                transactional=b.is_transactional,
                control=b.is_control_batch,
                count=b.records_count,
                leader_epoch=b.leader_epoch,
            )
        else:
            d.update(
                base_offset=recs[0].offset,
                last_offset=b.base_offset,  # a legacy wrapper's offset is its last message's
                crc=b._crc,  # the stored CRC32 of the (wrapper) message
                compression=b.compression_type,
                count=len(recs),
            )
        out.append(d)
        pos += b.size_in_bytes
    return out
