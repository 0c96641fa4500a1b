"""The parser registry: what each artifact family detects, which tables it fills.

A family module under ``pipeline/ingest/`` subclasses :class:`Parser` and decorates it
with :func:`register`. Detection is by content (:class:`Probe` holds the first bytes,
decompressed when the file is gzip). Parsing is a generator of ``(table, frame)`` chunks;
bad records go to :meth:`ParseContext.error` with their position and parsing goes on.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import click
import polars as pl

from pipeline.manifest import Manifest

PROBE_BYTES = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"

# Family modules, imported once by :func:`parsers`. Order does not matter: detection
# order is each parser's ``priority``.
FAMILIES = ("pcap", "segments", "ebpf", "threaddump", "jfr")

Chunk = tuple[str, pl.DataFrame]


@dataclass
class Probe:
    """The first bytes of a file, for content detection."""

    path: Path  # where the file is on disk
    name: str  # path inside the bundle, with "/" separators
    size: int
    head: bytes  # first PROBE_BYTES, gunzipped when ``gzipped``
    gzipped: bool = False

    @classmethod
    def of(cls, path: Path, name: str | None = None) -> Probe:
        with open(path, "rb") as f:
            head = f.read(PROBE_BYTES)
        gzipped = head[:2] == GZIP_MAGIC
        if gzipped:
            try:
                with gzip.open(path, "rb") as g:
                    head = g.read(PROBE_BYTES)
            except (OSError, EOFError):
                head = b""  # a damaged gzip: detected by nobody, reported as skipped
        return cls(path, name or path.name, path.stat().st_size, head, gzipped)

    def text_lines(self, limit: int = 200) -> list[str]:
        """Head decoded as text (UTF-8, UTF-16 with BOM, else Latin-1), first lines."""
        return decode_text(self.head).splitlines()[:limit]


def decode_text(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start > len(data) - 4:  # cut inside a multi-byte character at the probe's end
            return data[: exc.start].decode("utf-8")
        return data.decode("latin-1")


@dataclass
class IngestError:
    position: int | None
    unit: str
    severity: str
    what: str
    message: str


@dataclass
class ParseContext:
    """What a parser gets besides the file: the manifest, hints, and an error sink."""

    path: Path
    name: str
    artifact_id: str
    manifest: Manifest = field(default_factory=Manifest)
    # Facts shared across a bundle's artifacts, written by earlier parsers (captures run
    # first): e.g. "capture_date" (datetime.date) for logs that print only time of day.
    # Write with setdefault (the first artifact in name order wins); with --jobs the
    # runner merges each artifact's hints the same way once its wave is done.
    hints: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int], None] = lambda n: None  # called with bytes consumed so far
    errors: list[IngestError] = field(default_factory=list)
    bytes_skipped: int = 0
    jobs: int = 1  # processes this artifact's parser may use (set when it runs alone)
    max_errors: int = 100_000

    def error(
        self,
        position: int | None,
        what: str,
        message: str,
        *,
        unit: str = "byte",
        severity: str = "error",
        skipped_bytes: int = 0,
    ) -> None:
        """Record a bad record or a gap; ``skipped_bytes`` counts toward bytes_skipped."""
        self.bytes_skipped += skipped_bytes
        if len(self.errors) < self.max_errors:
            self.errors.append(IngestError(position, unit, severity, what, message))
        elif len(self.errors) == self.max_errors:
            self.errors.append(IngestError(position, unit, "error", "too_many_errors", "further errors not recorded"))

    def open(self) -> IO[bytes]:
        """Open the artifact for streaming reads, gunzipping transparently. A damaged or
        cut gzip stream ends early with a ``data_loss`` error instead of raising."""
        f = open(self.path, "rb")
        if f.read(2) == GZIP_MAGIC:
            f.seek(0)
            return io.BufferedReader(_SalvagingGzip(f, self), buffer_size=1 << 20)
        f.seek(0)
        return f

    def open_text(self) -> io.TextIOWrapper:
        """Open as text, honouring a UTF-16 BOM; undecodable bytes are replaced."""
        raw = self.open()
        bom = raw.peek(2)[:2]  # type: ignore[attr-defined]
        enc = "utf-16" if bom in (b"\xff\xfe", b"\xfe\xff") else "utf-8"
        return io.TextIOWrapper(raw, encoding=enc, errors="replace", newline="")


class _SalvagingGzip(io.RawIOBase):
    """A gzip reader (multi-member) that keeps every byte it can inflate: a cut or damaged
    stream ends early with one ``data_loss`` error at the uncompressed offset of the
    damage, instead of raising and losing the last buffer."""

    CHUNK = 64 * 1024

    def __init__(self, raw: IO[bytes], ctx: ParseContext) -> None:
        self._raw, self._ctx = raw, ctx
        self._z = zlib.decompressobj(wbits=31)
        self._pending = b""  # inflated, not yet returned
        self._pos = 0  # uncompressed bytes returned so far
        self._done = False

    def readable(self) -> bool:
        return True

    def _fail(self, why: str) -> None:
        self._done = True
        self._ctx.error(
            self._pos + len(self._pending),
            "gzip_damaged",
            f"gzip stream {why} after {self._pos + len(self._pending)} uncompressed bytes "
            f"(compressed offset {self._raw.tell()})",
            severity="data_loss",
        )

    def _fill(self) -> None:
        while not self._pending and not self._done:
            data = self._raw.read(self.CHUNK)
            if not data:
                if self._z.unconsumed_tail or not self._z.eof and self._started:
                    self._fail("cut short")
                self._done = True
                return
            self._started = True
            try:
                self._pending = self._z.decompress(data)
                while self._z.eof:  # the next gzip member follows
                    rest = self._z.unused_data
                    self._z = zlib.decompressobj(wbits=31)
                    self._started = bool(rest)
                    if not rest:
                        break
                    self._pending += self._z.decompress(rest)
            except zlib.error as exc:
                self._fail(f"damaged ({exc})")

    _started = False

    def readinto(self, b) -> int:  # type: ignore[override]
        self._fill()
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._pos += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class Parser:
    """Base class of an artifact family's parser. Subclasses set the class attributes."""

    kind: ClassVar[str]  # artifacts.kind
    tables: ClassVar[tuple[str, ...]] = ()  # tables this parser fills
    version: ClassVar[str] = "1"
    priority: ClassVar[int] = 100  # lower is probed first
    # Kinds that are recognised but carry no rows of their own (index files, checkpoints):
    # detection returns a reason and the artifact is listed as skipped with it.
    skip_reason: ClassVar[str | None] = None

    @classmethod
    def detect(cls, probe: Probe) -> bool:
        """True when the probe is this parser's format. Must be cheap and never raise."""
        raise NotImplementedError

    @classmethod
    def detect_deep(cls, probe: Probe) -> bool:
        """Asked only of a file no parser recognised by its head: True when the format
        shows up further in (a thread dump in a broker's stdout log). May read the file."""
        return False

    def parse(self, ctx: ParseContext) -> Iterator[Chunk]:
        """Yield ``(table, frame)`` chunks; record bad input with ``ctx.error``."""
        raise NotImplementedError

    @classmethod
    def summarise(cls, tables: dict[str, pl.DataFrame]) -> list[tuple[str, pl.DataFrame]]:
        """Titled summary frames for ``kforensics inspect`` from the parsed tables."""
        return []


REGISTRY: list[type[Parser]] = []
DUMP_COMMANDS: list[click.Command] = []


def register(cls: type[Parser]) -> type[Parser]:
    if cls not in REGISTRY:
        REGISTRY.append(cls)
        REGISTRY.sort(key=lambda p: (p.priority, p.kind))
    return cls


def dump_command(cmd: click.Command) -> click.Command:
    """Register a ``kforensics dump <name>`` subcommand from a family module."""
    if cmd not in DUMP_COMMANDS:
        DUMP_COMMANDS.append(cmd)
    return cmd


_loaded = False


def load_families() -> None:
    """Import the family modules, then any site modules named in ``$KFORENSICS_PLUGINS``
    (comma-separated module names, e.g. a parser for an in-house log format)."""
    global _loaded
    if not _loaded:
        for fam in FAMILIES:
            importlib.import_module(f"pipeline.ingest.{fam}")
        for mod in filter(None, (m.strip() for m in os.environ.get("KFORENSICS_PLUGINS", "").split(","))):
            importlib.import_module(mod)
        _loaded = True


def parsers() -> list[type[Parser]]:
    load_families()
    return list(REGISTRY)


def detect(probe: Probe) -> type[Parser] | None:
    """The parser for a probed file: by its head first, then by a look further in."""
    for check in ("detect", "detect_deep"):
        for p in parsers():
            try:
                if getattr(p, check)(probe):
                    return p
            except Exception:  # noqa: BLE001 - a detector must never take the intake down
                continue
    return None
