"""Bundle intake: a directory, or a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` extracted safely.

Archives are untrusted. Every member is checked before it is written: absolute paths,
``..`` components, links, device files and FIFOs refuse the whole archive with a message
naming the member; total size and file count are capped, and so is each member's
compression ratio. Extraction happens only below ``OUTDIR/.bundle``.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.errors import UnsafeBundle, UsageError
from pipeline.manifest import MANIFEST_NAME, Manifest, load_manifest

MAX_TOTAL_BYTES = 64 * 1024**3
MAX_FILES = 100_000
MAX_RATIO = 200  # uncompressed / compressed, per archive member, for members over 1 MiB
# How far a compressed tar stream may read ahead of what a member's bytes really needed.
TAR_READ_AHEAD = 256 * 1024
COPY_CHUNK = 1024 * 1024
EXTRACT_DIR = ".bundle"


@dataclass
class Limits:
    max_total_bytes: int = MAX_TOTAL_BYTES
    max_files: int = MAX_FILES
    max_ratio: int = MAX_RATIO


@dataclass
class BundleFile:
    path: Path  # on disk
    name: str  # inside the bundle, "/"-separated


@dataclass
class Bundle:
    """The files of a bundle on disk, the manifest, and files passed over at intake."""

    source: Path
    root: Path
    files: list[BundleFile]
    manifest: Manifest
    manifest_name: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def _check_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeBundle(f"archive member '{name}' has an absolute path: refused")
    if ".." in p.parts:
        raise UnsafeBundle(f"archive member '{name}' climbs out with '..': refused")
    return PurePosixPath(*[part for part in p.parts if part not in ("", ".")])


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits, self.bytes, self.files = limits, 0, 0

    def add_file(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise UnsafeBundle(f"archive has more than {self.limits.max_files} files (at '{name}'): refused")

    def copy(self, src, dst_path: Path, name: str, compressed: int | Callable[[], int] | None = None) -> None:
        """Copy one member; ``compressed`` is its compressed size, or a function giving the
        compressed bytes read so far for it (a compressed tar stream)."""
        written = 0
        with open(dst_path, "wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                written += len(chunk)
                self.bytes += len(chunk)
                if self.bytes > self.limits.max_total_bytes:
                    raise UnsafeBundle(
                        f"archive expands beyond {self.limits.max_total_bytes} bytes (at '{name}'): refused"
                    )
                if (
                    compressed is not None
                    and written > 1024**2
                    and written > self.limits.max_ratio * max(compressed() if callable(compressed) else compressed, 1)
                ):
                    raise UnsafeBundle(
                        f"archive member '{name}' expands more than {self.limits.max_ratio}x: refused as a decompression bomb"
                    )
                dst.write(chunk)


def _target(dest: Path, rel: PurePosixPath) -> Path:
    out = dest.joinpath(*rel.parts)
    if not out.resolve().is_relative_to(dest.resolve()):
        raise UnsafeBundle(f"archive member '{rel}' would be written outside the bundle folder: refused")
    return out


def _extract_tar(src: Path, dest: Path, limits: Limits) -> None:
    budget = _Budget(limits)
    try:
        with open(src, "rb") as raw, tarfile.open(fileobj=raw, mode="r:*") as tar:
            compressed = tar.fileobj is not raw  # gzip, bzip2 or xz around the tar stream
            for m in tar:
                rel = _check_name(m.name)
                if m.issym() or m.islnk():
                    raise UnsafeBundle(f"archive member '{m.name}' is a link (to '{m.linkname}'): refused")
                if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
                    raise UnsafeBundle(f"archive member '{m.name}' is a device or FIFO: refused")
                if not rel.parts:
                    continue
                out = _target(dest, rel)
                if m.isdir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                if not m.isfile():
                    raise UnsafeBundle(f"archive member '{m.name}' is not a regular file: refused")
                budget.add_file(m.name)
                out.parent.mkdir(parents=True, exist_ok=True)
                fobj = tar.extractfile(m)
                if fobj is None:
                    raise UnsafeBundle(f"archive member '{m.name}' cannot be read: refused")
                start = raw.tell()
                # compressed bytes read for this member, generously counted (read-ahead)
                consumed = (lambda start=start: raw.tell() - start + TAR_READ_AHEAD) if compressed else None
                budget.copy(fobj, out, m.name, compressed=consumed)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, UnsafeBundle):
            raise
        raise UsageError(f"{src.name}: damaged archive: {exc}") from None


def _extract_zip(src: Path, dest: Path, limits: Limits) -> None:
    budget = _Budget(limits)
    try:
        with zipfile.ZipFile(src) as zf:
            for info in zf.infolist():
                rel = _check_name(info.filename)
                ftype = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer set no type
                if ftype == stat.S_IFLNK:
                    raise UnsafeBundle(f"archive member '{info.filename}' is a link: refused")
                if ftype not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise UnsafeBundle(f"archive member '{info.filename}' is not a regular file: refused")
                if not rel.parts:
                    continue
                out = _target(dest, rel)
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                budget.add_file(info.filename)
                if info.file_size > 1024**2 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                    raise UnsafeBundle(
                        f"archive member '{info.filename}' claims a {info.file_size // max(info.compress_size, 1)}x "
                        "compression ratio: refused as a decompression bomb"
                    )
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fobj:
                    budget.copy(fobj, out, info.filename, compressed=info.compress_size)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        if isinstance(exc, UnsafeBundle):
            raise
        raise UsageError(f"{src.name}: damaged archive: {exc}") from None


def archive_kind(path: Path) -> str | None:
    """'tar' or 'zip' by content, else None (a plain file or a directory)."""
    if path.is_dir():
        return None
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError, ValueError, zlib.error, tarfile.TarError):
        pass  # a cut or damaged compressed stream is no archive we can read
    return None


def _walk(root: Path, skipped: list[tuple[str, str]]) -> list[BundleFile]:
    files: list[BundleFile] = []
    real_root = root.resolve()
    for p in sorted(root.rglob("*")):
        name = p.relative_to(root).as_posix()
        if any(part == EXTRACT_DIR for part in p.relative_to(root).parts):
            continue
        if p.is_symlink():
            target = p.resolve()
            if not target.is_relative_to(real_root):
                skipped.append((name, f"link pointing outside the bundle ({target}): not followed"))
                continue
            skipped.append((name, "link inside the bundle: its target is read instead"))
            continue
        st = p.lstat()
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            skipped.append((name, "not a regular file (device, FIFO or socket)"))
            continue
        files.append(BundleFile(p, name))
    return files


def open_bundle(source: Path, outdir: Path, limits: Limits | None = None) -> Bundle:
    """List a bundle's files, extracting an archive below ``outdir`` first."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"bundle not found: {source}")
    limits = limits or Limits()
    if source.is_dir():
        root = source
    else:
        kind = archive_kind(source)
        if kind is None:
            raise UsageError(
                f"{source} is neither a directory nor a .tar/.tar.gz/.zip archive "
                "(use `kforensics inspect` for a single file)"
            )
        root = Path(outdir) / EXTRACT_DIR
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        try:
            (_extract_tar if kind == "tar" else _extract_zip)(source, root, limits)
        except Exception:
            shutil.rmtree(root, ignore_errors=True)
            raise
    skipped: list[tuple[str, str]] = []
    files = _walk(root, skipped)
    manifest_file = _find_manifest(files)
    manifest = load_manifest(manifest_file.path if manifest_file else None)
    return Bundle(source, root, files, manifest, manifest_file.name if manifest_file else None, skipped)


def _find_manifest(files: list[BundleFile]) -> BundleFile | None:
    """``bundle.toml`` at the root, or in the single top folder of an archive."""
    candidates = [f for f in files if PurePosixPath(f.name).name == MANIFEST_NAME]
    candidates.sort(key=lambda f: f.name.count("/"))
    if candidates and candidates[0].name.count("/") <= 1:
        return candidates[0]
    return None
