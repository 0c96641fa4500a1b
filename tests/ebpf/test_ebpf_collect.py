"""The collection kit end to end: collect.sh on a real ext4, pack.sh, then `kforensics ingest`.

A loop-mounted ext4 stands in for a broker's data disk and fixtures/ebpf/writer.py for its
log appenders (no JVM: the kit then skips thread dumps and JFR).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import polars as pl
import pytest
from ebpf_testlib import REPO, parse_file

from pipeline.bundle import open_bundle
from pipeline.progress import Progress
from pipeline.registry import load_families
from pipeline.runner import ingest_bundle
from pipeline.store import Store

KIT = REPO / "collect"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_tool,
    pytest.mark.skipif(
        os.geteuid() != 0 or not all(shutil.which(t) for t in ("bpftrace", "mkfs.ext4", "losetup", "tcpdump")),
        reason="needs root, bpftrace, tcpdump, losetup and mkfs.ext4",
    ),
]


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def test_collect_pack_ingest(tmp_path):
    img, mnt, out = tmp_path / "disk.img", tmp_path / "mnt", tmp_path / "bundle"
    with open(img, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    loop = sh("losetup", "-f", "--show", str(img))
    writer = None
    try:
        sh("mkfs.ext4", "-q", "-O", "fast_commit", loop)
        mnt.mkdir()
        sh("mount", "-o", "commit=1", loop, str(mnt))
        data = mnt / "kafka-logs"
        data.mkdir()
        writer = subprocess.Popen(
            [sys.executable, str(REPO / "fixtures" / "ebpf" / "writer.py"), str(data), "600"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        threads = {int(writer.stdout.readline().split()[0]) for _ in range(5)}
        run = subprocess.run(
            [str(KIT / "collect.sh"), "-d", str(data), "-t", "3", "-o", str(out), "-P", "19092", "-i", "lo"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-2000:]
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        subprocess.run(["umount", str(mnt)], check=False)
        subprocess.run(["losetup", "-d", loop], check=False)

    assert sorted(p.name for p in (out / "segments").iterdir()) == [
        "clickstream-enriched-with-geo-and-device-data-eu-west-1-prods-17",
        "orders-0",
        "orders-1",
        "pay-ments-eu-12",
        "pay-ments-eu-3",
    ]
    p = parse_file(out / "ebpf" / "fs_writes.txt")
    assert [e.what for e in p.errs("error", "data_loss")] == ["truncated_path"]  # writer.py's 64-byte name
    writes = p.fs.filter((pl.col("operation") == "write") & pl.col("path").str.ends_with(".log"))
    assert set(writes["tid"]) == threads
    assert set(writes["fs"]) == {"ext4"}
    assert writes.filter(pl.col("topic").is_null())["path"].str.split("/").list.first().unique().to_list() == [
        "clickstream-enriched-with-geo-and-device-data-eu-west-1-prods-1"
    ]

    archive = sh(str(KIT / "pack.sh"), str(out))
    assert archive == f"{out}.tar.gz"
    store_dir = tmp_path / "out"
    load_families()  # every family's tables exist before the store is opened
    with Store(store_dir) as store:
        bundle = open_bundle(tmp_path / "bundle.tar.gz", store_dir)
        assert bundle.manifest.kafka_ports == (19092,)
        assert bundle.manifest.date is not None and bundle.manifest.boot_time_ns is not None
        summary = ingest_bundle(bundle, store, progress=Progress(quiet=True))
        ebpf = {r.path.split("/", 1)[1]: r.status for r in summary.results if r.kind == "ebpf"}
        assert ebpf == {"ebpf/fs_writes.txt": "partial", "ebpf/journal.txt": "ok", "ebpf/offcpu_write.txt": "ok"}
        assert store.frame("select count(*) from fs_writes where start_at is null").row(0)[0] == 0
        assert store.frame("select count(*) from kernel_calls where func = 'ext4_fc_commit'").row(0)[0] > 0
