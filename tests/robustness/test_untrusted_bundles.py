"""Untrusted bundles: decompression bombs in tar streams, odd member names, special files in
a directory bundle, and a bundle that is no archive at all. Nothing escapes OUTDIR."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from pipeline.bundle import EXTRACT_DIR, open_bundle
from pipeline.errors import UnsafeBundle, UsageError

REPO = Path(__file__).resolve().parents[2]


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.n = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.n)
        b[:k] = bytes(k)
        self.n -= k
        return k


def _zeros_tar(path: Path, size: int, mode: str) -> Path:
    with tarfile.open(path, mode) as tar:
        info = tarfile.TarInfo("incident/zeros.bin")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))
    return path


def _files_outside(tmp: Path, out: Path) -> set[str]:
    return {p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if not p.is_relative_to(out)}


# Bombs are opened in a child process so that its peak memory is its own.
_OPEN = """
import sys, time
from pathlib import Path
from pipeline.bundle import open_bundle
def peak_kib():  # VmHWM starts afresh at exec, unlike ru_maxrss
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
t0 = time.perf_counter()
try:
    open_bundle(Path(sys.argv[1]), Path(sys.argv[2]))
    print("ACCEPTED")
except Exception as exc:
    print(type(exc).__name__, exc)
print(f"{time.perf_counter() - t0:.3f} {peak_kib()}")
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory read from /proc")
@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_compressed_tar_bomb_is_refused_early_with_bounded_memory(tmp_path, mode):
    # 256 MiB of zeros in a few hundred KiB: refused long before it is all written
    arc = _zeros_tar(tmp_path / f"bomb.tar.{mode[2:]}", 256 * 1024 * 1024, mode)
    assert arc.stat().st_size < 1024 * 1024
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _OPEN, str(arc), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
    )
    verdict, figures = proc.stdout.strip().splitlines()
    assert verdict == (
        "UnsafeBundle archive member 'incident/zeros.bin' expands more than 200x: refused as a decompression bomb"
    )
    seconds, peak_kib = figures.split()
    assert float(seconds) < 5.0
    assert int(peak_kib) < 120 * 1024, f"peak RSS {peak_kib} KiB"
    assert not (out / EXTRACT_DIR).exists()  # the partial extraction is removed
    assert _files_outside(tmp_path, out) == {arc.name}


def test_plain_tar_of_a_large_member_is_not_a_bomb(tmp_path):
    arc = _zeros_tar(tmp_path / "big.tar", 3 * 1024 * 1024, "w")
    b = open_bundle(arc, tmp_path / "out")
    assert [(f.name, f.path.stat().st_size) for f in b.files] == [("incident/zeros.bin", 3 * 1024 * 1024)]


def test_compressible_log_below_the_ratio_is_extracted(tmp_path):
    # real text compresses ~10x: a 4 MiB member passes
    text = b"".join(f"{i} 2026-11-20T17:58:{i % 60:02d} write 4096 bytes to topicF-6\n".encode() for i in range(70000))
    arc = tmp_path / "log.tar.gz"
    with tarfile.open(arc, "w:gz") as tar:
        info = tarfile.TarInfo("log.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    b = open_bundle(arc, tmp_path / "out")
    assert [f.path.read_bytes() == text for f in b.files] == [True]


ODD_NAMES = [
    "caf\u00e9/d\u00fcmp.txt",  # UTF-8
    "line\nbreak.txt",
    "tab\there.txt",
    "space name .txt",
    "x" * 200 + ".txt",  # long component (< 255)
    "/".join(["d"] * 60) + "/deep.txt",  # deep path
    "-leading-dash.txt",
    "questions?*.txt",
]


def test_tar_with_odd_member_names_extracts_each_below_outdir(tmp_path):
    arc = tmp_path / "odd.tar.gz"
    with tarfile.open(arc, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for i, name in enumerate(ODD_NAMES):
            data = f"file {i}\n".encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    b = open_bundle(arc, out)
    assert sorted(f.name for f in b.files) == sorted(ODD_NAMES)
    for f in b.files:
        assert f.path.resolve().is_relative_to((out / EXTRACT_DIR).resolve())
        assert f.path.read_text() == f"file {ODD_NAMES.index(f.name)}\n"
    assert _files_outside(tmp_path, out) == {"odd.tar.gz"}


def test_tar_with_non_utf8_member_name(tmp_path):
    arc = tmp_path / "bytes.tar"
    with tarfile.open(arc, "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("d\xfcmp-\xff.txt")  # written as the bytes 0xfc and 0xff
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    assert b"d\xfcmp-\xff.txt" in arc.read_bytes()
    out = tmp_path / "out"
    b = open_bundle(arc, out)
    assert len(b.files) == 1 and b.files[0].path.read_bytes() == b"hi"
    assert b.files[0].path.parent == out / EXTRACT_DIR
    assert _files_outside(tmp_path, out) == {"bytes.tar"}


def test_zip_with_odd_member_names(tmp_path):
    arc = tmp_path / "odd.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        for i, name in enumerate(ODD_NAMES):
            zf.writestr(name, f"file {i}\n")
        raw = zipfile.ZipInfo("raw-\udcff.txt".encode("utf-8", "surrogateescape").decode("cp437"))
        zf.writestr(raw, b"cp437 name")  # no UTF-8 flag: read back as cp437
    out = tmp_path / "out"
    b = open_bundle(arc, out)
    assert len(b.files) == len(ODD_NAMES) + 1
    assert set(ODD_NAMES) <= {f.name for f in b.files}
    assert all(f.path.resolve().is_relative_to((out / EXTRACT_DIR).resolve()) for f in b.files)
    assert _files_outside(tmp_path, out) == {"odd.zip"}


def test_directory_bundle_with_odd_names_and_special_files(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "line\nbreak.txt").write_text("a\n")
    Path(os.fsdecode(os.fsencode(root) + b"/raw-\xff\xfe.txt")).write_text("b\n")  # not UTF-8
    (root / ("y" * 250)).write_text("c\n")
    os.mkfifo(root / "a.fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "a.sock"))
        b = open_bundle(root, tmp_path / "out")
    finally:
        sock.close()
    assert sorted(f.name for f in b.files) == sorted(["line\nbreak.txt", "raw-\udcff\udcfe.txt", "y" * 250])
    assert sorted(b.skipped) == [
        ("a.fifo", "not a regular file (device, FIFO or socket)"),
        ("a.sock", "not a regular file (device, FIFO or socket)"),
    ]


def test_directory_bundle_with_a_fifo_ingests_without_blocking(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    os.mkfifo(root / "capture.pcap")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "-q", "ingest", str(root), "-o", str(tmp_path / "out"), "-j", "1"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("content", [b"", b"just some text\n", b"\x1f\x8b\x08\x00garbage", b"PK\x03\x04garbage"])
def test_a_bundle_that_is_not_an_archive_is_a_usage_error(tmp_path, content):
    src = tmp_path / "bundle.tar.gz"
    src.write_bytes(content)
    with pytest.raises(UsageError) as err:
        open_bundle(src, tmp_path / "out")
    assert str(src) in str(err.value) or "damaged archive" in str(err.value)
    assert _files_outside(tmp_path, tmp_path / "out") == {"bundle.tar.gz"}


def test_unsafe_member_after_good_ones_leaves_nothing_behind(tmp_path):
    arc = tmp_path / "late.tar.gz"
    with tarfile.open(arc, "w:gz") as tar:
        for name in ("ok/a.txt", "ok/b.txt", "../../escape.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    out = tmp_path / "out"
    with pytest.raises(UnsafeBundle, match="climbs out"):
        open_bundle(arc, out)
    assert not (out / EXTRACT_DIR).exists()
    assert _files_outside(tmp_path, out) == {"late.tar.gz"}
