import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.bundle import EXTRACT_DIR, Limits, open_bundle
from pipeline.errors import ManifestError, UnsafeBundle, UsageError


def _tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tar.addfile(m)
            else:
                name, data = m
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.fixture
def sandbox(tmp_path):
    """A folder holding the archive and OUTDIR; anything new outside OUTDIR is an escape."""
    out = tmp_path / "out"
    return tmp_path, out


def _refused(sandbox, archive: Path, fragment: str) -> None:
    tmp, out = sandbox
    before = _snapshot(tmp) - {p for p in _snapshot(tmp) if p.startswith("out")}
    with pytest.raises(UnsafeBundle) as err:
        open_bundle(archive, out)
    assert fragment in str(err.value)
    after = {p for p in _snapshot(tmp) if not p.startswith("out")}
    assert after == before, f"written outside OUTDIR: {after - before}"
    assert not (out / EXTRACT_DIR).exists(), "a refused archive leaves no partial extraction"


def test_tar_with_dotdot_is_refused(sandbox):
    tmp, _ = sandbox
    arc = _tar(tmp / "evil.tar.gz", [("ok.txt", b"fine"), ("a/../../escaped.txt", b"x")])
    _refused(sandbox, arc, "archive member 'a/../../escaped.txt' climbs out with '..'")


def test_tar_with_absolute_path_is_refused(sandbox):
    tmp, _ = sandbox
    arc = _tar(tmp / "abs.tar", [(str(tmp / "abs.txt"), b"x")], mode="w")
    _refused(sandbox, arc, "has an absolute path")


def test_tar_symlink_escape_is_refused(sandbox):
    tmp, _ = sandbox
    link = tarfile.TarInfo("logs")
    link.type, link.linkname = tarfile.SYMTYPE, str(tmp)
    arc = _tar(tmp / "link.tgz", [link, ("logs/pwned.txt", b"x")])
    _refused(sandbox, arc, "archive member 'logs' is a link")
    assert not (tmp / "pwned.txt").exists()


def test_tar_hardlink_and_device_are_refused(sandbox):
    tmp, _ = sandbox
    hard = tarfile.TarInfo("h")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    _refused(sandbox, _tar(tmp / "hard.tar.gz", [hard]), "is a link")
    dev = tarfile.TarInfo("dev")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
    _refused(sandbox, _tar(tmp / "dev.tar.gz", [dev]), "is a device or FIFO")


def test_zip_bomb_is_refused(sandbox):
    tmp, _ = sandbox
    arc = tmp / "bomb.zip"
    with zipfile.ZipFile(arc, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (20 * 1024 * 1024))
    _refused(sandbox, arc, "refused as a decompression bomb")


def test_zip_dotdot_is_refused(sandbox):
    tmp, _ = sandbox
    arc = tmp / "dd.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("../x.txt", b"x")
    _refused(sandbox, arc, "climbs out with '..'")


def test_total_size_and_file_count_caps(sandbox):
    tmp, _ = sandbox
    arc = _tar(tmp / "many.tar.gz", [(f"f{i}.txt", b"abc") for i in range(5)])
    with pytest.raises(UnsafeBundle, match="more than 3 files"):
        open_bundle(arc, tmp / "out", Limits(max_files=3))
    with pytest.raises(UnsafeBundle, match="expands beyond 10 bytes"):
        open_bundle(arc, tmp / "out", Limits(max_total_bytes=10))


def test_good_tar_extracts_below_outdir_with_manifest(tmp_path):
    arc = _tar(tmp_path / "b.tar.gz", [("incident/bundle.toml", b"slo_ms = 100\n"), ("incident/x/y.txt", b"hi")])
    b = open_bundle(arc, tmp_path / "out")
    assert b.root == tmp_path / "out" / EXTRACT_DIR
    assert sorted(f.name for f in b.files) == ["incident/bundle.toml", "incident/x/y.txt"]
    assert b.manifest.slo_ms == 100.0 and b.manifest_name == "incident/bundle.toml"


def test_zip_bundle_extracts(tmp_path):
    arc = tmp_path / "b.zip"
    with zipfile.ZipFile(arc, "w") as zf:
        zf.writestr("a/b.txt", b"hello")
    assert [f.name for f in open_bundle(arc, tmp_path / "out").files] == ["a/b.txt"]


def test_directory_bundle_does_not_follow_outside_links(tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "real.txt").write_text("x")
    (bundle / "escape").symlink_to("/etc/passwd")
    b = open_bundle(bundle, tmp_path / "out")
    assert [f.name for f in b.files] == ["real.txt"]
    assert b.skipped == [("escape", "link pointing outside the bundle (/etc/passwd): not followed")]


def test_not_an_archive_is_a_usage_error(tmp_path):
    f = tmp_path / "capture.pcap"
    f.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\0" * 20)
    with pytest.raises(UsageError, match="neither a directory nor a .tar/.tar.gz/.zip archive"):
        open_bundle(f, tmp_path / "out")


def test_bad_manifest_in_bundle_names_the_key(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.toml").write_text("slo = 3\n")
    with pytest.raises(ManifestError, match="unknown key 'slo'"):
        open_bundle(tmp_path / "b", tmp_path / "out")
