"""The lab: make a produce-latency incident on a real file system, collect it, explain it.

``kforensics lab run --fs CONFIG`` creates a file-system image with one configuration on a
loop device, runs the Java broker of ``lab/broker`` on it with real librdkafka producers
and background writeback pressure, collects a bundle (tcpdump, the bpftrace programs of
``collect/bpftrace``, JFR, jstack, the segments, ``bundle.toml``), runs the pipeline on it,
and checks the pipeline's attributions against independent evidence from the same run.
``kforensics lab matrix`` repeats that for every configuration and compares them.

Everything started is stopped by PID and everything set up is undone, in reverse order,
even on Ctrl-C or SIGTERM; ``lab cleanup DIR`` undoes what a killed run left behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

from pipeline.errors import ForensicsError, UsageError

log = logging.getLogger("kforensics.lab")

REPO = Path(__file__).resolve().parents[1]
LAB_DIR = REPO / "lab"
BROKER_SRC = LAB_DIR / "broker"
JFR_SETTINGS = BROKER_SRC / "lab.jfc"
PRODUCER = LAB_DIR / "producer.py"
BACKGROUND = LAB_DIR / "background.sh"
DEFAULT_COLLECT = REPO / "collect"
TOPIC = "lab"
MESSAGE_ID_HEADER = "message-id"


class LabRefused(UsageError):
    """The lab cannot run on this machine; the message says why."""


class LabFailed(ForensicsError):
    """A lab step failed after setup began; cleanup has run."""


class LabInterrupted(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so that cleanup runs."""


# ---------------------------------------------------------------- configurations


@dataclass(frozen=True)
class FsConfig:
    """One file-system configuration under test."""

    name: str
    fstype: str  # ext4 | xfs
    mkfs_options: tuple[str, ...]
    mount_options: tuple[str, ...]
    summary: str


CONFIGS: dict[str, FsConfig] = {
    c.name: c
    for c in (
        FsConfig("ext4-ordered", "ext4", (), ("data=ordered",), "ext4 defaults: data=ordered, commit=5"),
        FsConfig("ext4-writeback", "ext4", (), ("data=writeback",), "ext4, data=writeback"),
        FsConfig("ext4-fastcommit", "ext4", ("-O", "fast_commit"), ("data=ordered",), "ext4 with fast commits"),
        FsConfig("ext4-commit1", "ext4", (), ("data=ordered", "commit=1"), "ext4, journal commit every 1 s"),
        FsConfig("xfs", "xfs", (), (), "XFS defaults"),
    )
}
BASELINE = "ext4-ordered"


def mkfs_command(cfg: FsConfig, device: str) -> list[str]:
    """The mkfs command line; inode tables and journal initialised now, no discard."""
    if cfg.fstype == "ext4":
        return [
            "mkfs.ext4",
            "-F",
            "-q",
            "-E",
            "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
            *cfg.mkfs_options,
            device,
        ]
    if cfg.fstype == "xfs":
        return ["mkfs.xfs", "-f", "-q", "-K", *cfg.mkfs_options, device]
    raise ValueError(f"unknown file system type {cfg.fstype!r}")


def mount_command(cfg: FsConfig, device: str, mountpoint: str) -> list[str]:
    options = ",".join(("nodiscard", *cfg.mount_options))
    return ["mount", "-t", cfg.fstype, "-o", options, device, mountpoint]


def kernel_dev(st_dev: int) -> int:
    """A device number as the kernel stores it in ``s_dev`` and tracepoint ``dev`` fields."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


# ---------------------------------------------------------------- options and preflight


@dataclass
class LabOptions:
    duration_s: float = 20.0
    seed: int = 1
    rate: float = 1000.0  # messages per second, all producers
    producers: int = 4
    partitions: int = 8
    handlers: int = 8
    image_mb: int = 768
    background_mb: int = 64  # size of each background file
    background_files: int = 3  # kept at once; the oldest is deleted, as retention deletes segments
    background_mode: str = "fdatasync"  # fdatasync | dsync | buffered (lab/background.sh)
    checkpoint_ms: int = 1000
    slo_ms: float = 65.0
    compression: str = "mixed"
    acks: str = "mixed"
    collect_dir: Path = DEFAULT_COLLECT
    image_dir: Path | None = None  # default: the run directory
    keep_image: bool = False
    pipeline: bool = True


TOOLS = {
    "bpftrace": "bpftrace (kernel tracing)",
    "tcpdump": "tcpdump (packet capture)",
    "javac": "a JDK (javac)",
    "java": "a JDK (java)",
    "jstack": "a JDK (jstack)",
    "jfr": "a JDK (jfr)",
    "losetup": "losetup (util-linux)",
    "mount": "mount",
    "umount": "umount",
    "dd": "dd (coreutils)",
}


def preflight(configs: list[FsConfig], collect_dir: Path) -> list[str]:
    """Every reason the lab cannot run here; empty when it can."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("not root: loop devices, mounts and bpftrace need root")
    if not Path("/dev/loop-control").exists():
        reasons.append("no loop devices (/dev/loop-control is missing)")
    for tool, what in TOOLS.items():
        if shutil.which(tool) is None:
            reasons.append(f"{what} not found on PATH")
    for fstype in sorted({c.fstype for c in configs}):
        if shutil.which(f"mkfs.{fstype}") is None:
            pkg = "xfsprogs" if fstype == "xfs" else "e2fsprogs"
            reasons.append(f"mkfs.{fstype} not found (install {pkg})")
        if not _fs_supported(fstype):
            reasons.append(f"the kernel does not list {fstype} in /proc/filesystems")
    for script in ("fs_writes.bt", "journal.bt"):
        if not (collect_dir / "bpftrace" / script).is_file():
            reasons.append(f"collection kit not found: {collect_dir / 'bpftrace' / script}")
    if not BROKER_SRC.is_dir():
        reasons.append(f"lab sources not found at {LAB_DIR} (the lab runs from a checkout)")
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        reasons.append("the confluent-kafka Python package is not installed (producers use it)")
    return reasons


def _fs_supported(fstype: str) -> bool:
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return False
    if any(line.split()[-1] == fstype for line in text.splitlines() if line.strip()):
        return True
    # not loaded yet: a module may still exist
    return subprocess.run(["modprobe", "-n", fstype], capture_output=True).returncode == 0


def loop_device_available() -> str | None:
    """None when ``losetup -f`` finds a free loop device, else the reason."""
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control is missing)"
    try:
        out = subprocess.run(["losetup", "-f"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"losetup -f failed: {exc}"
    if out.returncode != 0:
        return f"no free loop device: {out.stderr.strip()}"
    return None


# ---------------------------------------------------------------- processes and cleanup


@dataclass
class Started:
    name: str
    proc: subprocess.Popen
    stop_signal: int


class Cleanup:
    """Processes started and resources set up, undone in reverse order, each step guarded."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.steps: list[tuple[str, Callable[[], None]]] = []
        self.procs: dict[str, Started] = {}
        self.state_file = state_file
        self.state: dict[str, object] = {"pids": {}, "steps": []}
        self.errors: list[str] = []  # something could not be undone
        self.notes: list[str] = []  # undone, but not gently (a process that needed SIGKILL)

    def _save(self) -> None:
        if self.state_file is not None:
            self.state_file.write_text(json.dumps(self.state, indent=1))

    def record(self, key: str, value: object) -> None:
        self.state[key] = value
        self._save()

    def push(self, what: str, undo: Callable[[], None]) -> None:
        self.steps.append((what, undo))
        self.state["steps"].append(what)  # type: ignore[union-attr]
        self._save()

    def start(self, name: str, argv: list[str], stop_signal: int = signal.SIGTERM, **kwargs) -> subprocess.Popen:
        """Start a process in its own session (a terminal's Ctrl-C reaches only us)."""
        log.info("start %s: %s", name, " ".join(map(str, argv)))
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.procs[name] = Started(name, proc, stop_signal)
        self.state["pids"][name] = proc.pid  # type: ignore[index]
        self._save()
        return proc

    def stop(self, name: str, timeout: float = 20.0) -> int | None:
        """Stop one started process by PID (its stop signal, then SIGKILL to its group)."""
        s = self.procs.pop(name, None)
        if s is None:
            return None
        p = s.proc
        if p.poll() is None:
            try:
                os.kill(p.pid, s.stop_signal)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.notes.append(f"{name} (pid {p.pid}) ignored {signal.Signals(s.stop_signal).name}: killed")
                _killpg(p.pid)
                p.wait(10)
        # anything it started in its session (a shell loop's dd)
        _killpg(p.pid)
        self.state["pids"].pop(name, None)  # type: ignore[union-attr]
        self._save()
        return p.returncode

    def run(self) -> None:
        """Undo everything; SIGINT, SIGTERM and SIGHUP are ignored meanwhile so they cannot cut it short."""
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            for name in reversed(list(self.procs)):
                try:
                    self.stop(name)
                except Exception as exc:  # noqa: BLE001 - carry on cleaning
                    self.errors.append(f"stopping {name}: {exc}")
            while self.steps:
                what, undo = self.steps.pop()
                try:
                    undo()
                except Exception as exc:  # noqa: BLE001 - carry on cleaning
                    self.errors.append(f"{what}: {exc}")
                    log.error("cleanup step failed: %s: %s", what, exc)
            self.state["steps"] = []
            self.state["clean"] = not self.errors
            self._save()
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@contextmanager
def interrupts_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise like Ctrl-C does, so ``finally`` blocks run."""

    def handler(signum, _frame):
        raise LabInterrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def sh(argv: list[str], timeout: float = 300.0, check: bool = True) -> subprocess.CompletedProcess:
    log.info("run: %s", " ".join(map(str, argv)))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise LabFailed(f"{' '.join(map(str, argv))} failed ({out.returncode}): {out.stderr.strip()[:400]}")
    return out


# ---------------------------------------------------------------- file system


def unmount(mountpoint: str) -> None:
    for attempt in range(10):
        out = subprocess.run(["umount", mountpoint], capture_output=True, text=True)
        if out.returncode == 0 or not os.path.ismount(mountpoint):
            return
        time.sleep(0.3 * (attempt + 1))
    sh(["umount", "-l", mountpoint])
    raise LabFailed(f"{mountpoint} was busy: detached lazily (umount -l)")


def detach(device: str, image: Path) -> None:
    out = subprocess.run(["losetup", "-nO", "BACK-FILE", device], capture_output=True, text=True)
    if out.returncode == 0 and Path(out.stdout.strip()).resolve() == image.resolve():
        sh(["losetup", "-d", device])


def setup_filesystem(cfg: FsConfig, image: Path, size_mb: int, cleanup: Cleanup) -> tuple[str, Path, int]:
    """Image → loop device → mkfs → mount. Returns (device, mountpoint, kernel dev number)."""
    image.parent.mkdir(parents=True, exist_ok=True)
    cleanup.record("image", str(image.resolve()))
    cleanup.push(f"remove image {image}", lambda: image.unlink(missing_ok=True))
    # pre-written so that timings are not polluted by allocation in the backing file
    sh(["dd", "if=/dev/zero", f"of={image}", "bs=1M", f"count={size_mb}", "oflag=direct", "status=none"])
    device = sh(["losetup", "-f", "--show", "--direct-io=on", str(image)]).stdout.strip()
    cleanup.record("device", device)
    cleanup.push(f"detach {device}", lambda: detach(device, image))
    sh(mkfs_command(cfg, device))
    mountpoint = tempfile.mkdtemp(prefix=f"kforensics-lab-{cfg.name}-")
    cleanup.record("mountpoint", mountpoint)
    cleanup.push(f"remove {mountpoint}", lambda: os.rmdir(mountpoint))
    sh(mount_command(cfg, device, mountpoint))
    cleanup.push(f"unmount {mountpoint}", lambda: unmount(mountpoint))
    return device, Path(mountpoint), kernel_dev(os.stat(mountpoint).st_dev)


# ---------------------------------------------------------------- broker and collection


def kprobes_available() -> bool:
    out = subprocess.run(["bpftrace", "-l", "kprobe:ext4_dirty_inode"], capture_output=True, text=True, timeout=60)
    return "ext4_dirty_inode" in out.stdout


def tracer_programs(cfg: FsConfig, dev: int, bt: Path) -> list[tuple[str, ...]]:
    """(script, args...) of the kit's bpftrace programs for this file system, as collect.sh picks them."""
    progs: list[tuple[str, ...]] = [("fs_writes.bt", str(dev), "0")]
    if cfg.fstype == "ext4":
        progs.append(("journal.bt", str(dev)))
    elif (bt / "xfs_log.bt").is_file():
        progs.append(("xfs_log.bt", str(dev)))
    if cfg.fstype == "ext4" and (bt / "journal_kprobes.bt").is_file() and kprobes_available():
        progs.append(("journal_kprobes.bt", "1000"))
    elif (bt / "offcpu_write.bt").is_file():
        progs.append(("offcpu_write.bt", str(dev), "1000"))
    return progs


def compile_broker(cache_root: Path | None = None) -> Path:
    """Compile lab/broker/*.java once per source version; returns the classes directory."""
    sources = sorted(BROKER_SRC.glob("*.java"))
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:16]
    root = cache_root or Path(tempfile.gettempdir())
    classes = root / f"kforensics-lab-broker-{digest}"
    if (classes / "Broker.class").is_file():
        return classes
    tmp = Path(tempfile.mkdtemp(prefix="kforensics-lab-javac-", dir=root))
    out = subprocess.run(["javac", "-d", str(tmp), *map(str, sources)], capture_output=True, text=True)
    if out.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise LabFailed(f"javac failed: {out.stderr.strip()[:800]}")
    try:
        tmp.rename(classes)
    except OSError:  # compiled concurrently by another run
        shutil.rmtree(tmp, ignore_errors=True)
    return classes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise LabFailed(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.1)
    raise LabFailed(f"{what}: not ready after {timeout:.0f} s")


def file_contains(path: Path, needle: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return needle in path.read_text(errors="replace")
        except OSError:
            return False

    return check


def broker_argv(classes: Path, port: int, log_dir: Path, request_log: Path, jfr: Path, opts: LabOptions) -> list[str]:
    return [
        "java",
        "-Xms256m",
        "-Xmx256m",
        "-XX:+UseG1GC",
        f"-XX:StartFlightRecording=filename={jfr},settings={JFR_SETTINGS},dumponexit=true",
        "-cp",
        str(classes),
        "Broker",
        "--port",
        str(port),
        "--log-dir",
        str(log_dir),
        "--topic",
        TOPIC,
        "--partitions",
        str(opts.partitions),
        "--handlers",
        str(opts.handlers),
        "--leader-epoch",
        "1",
        "--checkpoint-ms",
        str(opts.checkpoint_ms),
        "--request-log",
        str(request_log),
    ]


def clock_pairing(samples: int = 9) -> dict[str, int]:
    """Wall clock minus CLOCK_MONOTONIC, from the tightest of a few bracketed readings."""
    best = None
    for _ in range(samples):
        m1 = time.monotonic_ns()
        w = time.time_ns()
        m2 = time.monotonic_ns()
        if best is None or m2 - m1 < best[0]:
            best = (m2 - m1, w - (m1 + (m2 - m1) // 2))
    assert best is not None
    return {"boot_time_ns": best[1], "uncertainty_ns": best[0]}


def write_manifest(bundle: Path, port: int, boot_time_ns: int, slo_ms: float, cfg: FsConfig, run_id: str) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    text = (
        f'description = "kforensics lab run {run_id}: {cfg.summary}"\n'
        f'incident = "{run_id}"\n'
        "broker_id = 0\n"
        f"kafka_ports = [{port}]\n"
        'timezone = "UTC"\n'
        f'date = "{today}"\n'
        f"boot_time_ns = {boot_time_ns}\n"
        f'message_id_header = "{MESSAGE_ID_HEADER}"\n'
        f"slo_ms = {slo_ms}\n"
    )
    (bundle / "bundle.toml").write_text(text)


def copy_segments(log_dir: Path, dest: Path) -> int:
    n = 0
    for part in sorted(p for p in log_dir.iterdir() if p.is_dir()):
        target = dest / part.name
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(part.iterdir()):
            if f.suffix == ".log" or f.name == "partition.metadata":
                shutil.copy2(f, target / f.name)
                n += f.suffix == ".log"
    return n


# ---------------------------------------------------------------- one run


@dataclass
class RunResult:
    config: str
    outdir: Path
    bundle: Path
    summary: dict = field(default_factory=dict)
    honesty: dict = field(default_factory=dict)
    pipeline_rc: int | None = None


def run_lab(cfg: FsConfig, outdir: Path, opts: LabOptions, echo: Callable[[str], None] = print) -> RunResult:
    """One lab run, start to finish; cleanup always runs. Raises LabRefused before touching anything."""
    reasons = preflight([cfg], opts.collect_dir)
    if not reasons and (why := loop_device_available()):
        reasons.append(why)
    if reasons:
        raise LabRefused("the lab cannot run here: " + "; ".join(reasons))
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    bundle = outdir / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    for sub in ("ebpf", "jvm", "segments"):
        (bundle / sub).mkdir(parents=True)
    run_id = f"lab-{cfg.name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    classes = compile_broker()
    cleanup = Cleanup(outdir / "lab-state.json")
    cleanup.record("config", cfg.name)
    summary: dict = {"run_id": run_id, "config": asdict(cfg), "options": _jsonable(asdict(opts))}
    image = (opts.image_dir or outdir) / f"{run_id}.img"
    t0 = time.monotonic()
    try:
        with interrupts_unwind():
            device, mnt, dev = setup_filesystem(cfg, image, opts.image_mb, cleanup)
            if opts.keep_image:
                cleanup.steps = [s for s in cleanup.steps if not s[0].startswith("remove image")]
            summary.update(
                device=device,
                mountpoint=str(mnt),
                dev=dev,
                mkfs=mkfs_command(cfg, device),
                mount=mount_command(cfg, device, str(mnt)),
            )
            echo(f"{cfg.name}: {device} mounted at {mnt} (dev {dev})")
            summary["clock_start"] = clock_pairing()
            port = free_port()
            bt = opts.collect_dir / "bpftrace"
            # the kit's programs, as collect/collect.sh runs them, all started before the workload
            tracers = tracer_programs(cfg, dev, bt)
            summary["tracers"] = [" ".join(t) for t in tracers]
            for script, *args in tracers:
                out_file = bundle / "ebpf" / f"{script[:-3]}.txt"
                with out_file.open("w") as f:
                    p = cleanup.start(
                        f"bpftrace-{script[:-3]}",
                        ["bpftrace", "-B", "line", str(bt / script), *args],
                        signal.SIGINT,
                        stdout=f,
                        stderr=subprocess.DEVNULL,
                    )
                wait_for(file_contains(out_file, "# columns"), 90, f"bpftrace {script}", p)
            tcpdump_err = outdir / "tcpdump.stderr"
            with tcpdump_err.open("w") as f:
                p = cleanup.start(
                    "tcpdump",
                    [
                        "tcpdump",
                        "-i",
                        "lo",
                        "-s",
                        "0",
                        "-U",
                        "-B",
                        "16384",
                        "-w",
                        str(bundle / "capture.pcap"),
                        "tcp",
                        "port",
                        str(port),
                    ],
                    signal.SIGINT,
                    stdout=subprocess.DEVNULL,
                    stderr=f,
                )
            wait_for(file_contains(tcpdump_err, "listening on"), 30, "tcpdump", p)
            log_dir = mnt / "kafka-logs"
            request_log = outdir / "broker-requests.tsv"
            broker_out = outdir / "broker.stdout"
            with broker_out.open("w") as f, (outdir / "broker.stderr").open("w") as ferr:
                broker = cleanup.start(
                    "broker",
                    broker_argv(classes, port, log_dir, request_log, bundle / "jvm" / "broker.jfr", opts),
                    signal.SIGTERM,
                    stdout=f,
                    stderr=ferr,
                    cwd=outdir,
                )
            wait_for(file_contains(broker_out, "LISTENING"), 60, "broker", broker)
            (mnt / "background").mkdir()
            cleanup.start(
                "background-writer",
                [
                    "sh",
                    str(BACKGROUND),
                    str(mnt / "background"),
                    str(opts.background_mb),
                    str(opts.background_files),
                    opts.background_mode,
                ],
                signal.SIGTERM,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            with (outdir / "producer.stderr").open("w") as ferr:
                producer = cleanup.start(
                    "producer",
                    [
                        sys.executable,
                        str(PRODUCER),
                        "--bootstrap",
                        f"127.0.0.1:{port}",
                        "--topic",
                        TOPIC,
                        "--partitions",
                        str(opts.partitions),
                        "--rate",
                        str(opts.rate),
                        "--duration",
                        str(opts.duration_s),
                        "--producers",
                        str(opts.producers),
                        "--compression",
                        opts.compression,
                        "--acks",
                        opts.acks,
                        "--header",
                        MESSAGE_ID_HEADER,
                        "--seed",
                        str(opts.seed),
                        "--out",
                        str(outdir / "producer.tsv"),
                    ],
                    signal.SIGTERM,
                    stdout=subprocess.DEVNULL,
                    stderr=ferr,
                )
            echo(f"{cfg.name}: producing for {opts.duration_s:.0f} s at {opts.rate:.0f} msg/s on port {port}")
            started = time.monotonic()
            dumps = 0
            for frac in (1 / 3, 2 / 3):
                delay = started + frac * opts.duration_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if broker.poll() is None:
                    dumps += 1
                    out = sh(["jstack", "-l", str(broker.pid)], timeout=60, check=False)
                    (bundle / "jvm" / f"jstack-{dumps}.txt").write_text(out.stdout)
            try:
                producer.wait(opts.duration_s + 120)
            except subprocess.TimeoutExpired:
                cleanup.errors.append("producer did not finish in time: stopped")
            summary["producer_rc"] = cleanup.stop("producer")
            cleanup.stop("background-writer")
            summary["broker_rc"] = cleanup.stop("broker", timeout=60)
            time.sleep(0.5)  # let the capture and the tracers see the last packets and writes
            cleanup.stop("tcpdump")
            for name in [n for n in cleanup.procs if n.startswith("bpftrace-")]:
                cleanup.stop(name, timeout=60)  # a busy machine may take a while to drain
            summary["tcpdump"] = tcpdump_err.read_text().strip().splitlines()[-3:]
            summary["segments"] = copy_segments(log_dir, bundle / "segments")
            summary["clock_end"] = clock_pairing()
            write_manifest(bundle, port, summary["clock_start"]["boot_time_ns"], opts.slo_ms, cfg, run_id)
            summary["jstack_dumps"] = dumps
    finally:
        cleanup.run()
        summary["cleanup_errors"] = cleanup.errors
        summary["cleanup_notes"] = cleanup.notes
        summary["seconds"] = round(time.monotonic() - t0, 1)
        (outdir / "lab-run.json").write_text(json.dumps(_jsonable(summary), indent=1))
    result = RunResult(cfg.name, outdir, bundle, summary)
    if cleanup.errors or cleanup.notes:
        echo(f"{cfg.name}: cleanup reported: {'; '.join(cleanup.errors + cleanup.notes)}")
    if opts.pipeline:
        result.pipeline_rc = run_pipeline(bundle, outdir / "out", echo)
    from pipeline.lab_checks import evaluate_run

    result.honesty = evaluate_run(outdir, opts.slo_ms)
    summary["evaluation"] = result.honesty
    summary["pipeline_rc"] = result.pipeline_rc
    (outdir / "lab-run.json").write_text(json.dumps(_jsonable(summary), indent=1))
    return result


def run_pipeline(bundle: Path, out: Path, echo: Callable[[str], None]) -> int:
    """``kforensics run``, then ``correlate`` and ``report`` where this build has them and ``run`` did not."""
    from pipeline.cli import cli

    rc = 0
    with (out.parent / "pipeline.log").open("w") as logf:

        def step(*args: str) -> int:
            cmd = [sys.executable, "-m", "pipeline", "-q", *args]
            logf.write(f"$ {' '.join(cmd)}\n")
            logf.flush()
            r = subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=REPO)
            echo(f"pipeline: kforensics {args[0]} → exit {r.returncode}")
            return r.returncode

        rc = step("run", str(bundle), "-o", str(out))
        if rc <= 1 and "correlate" in cli.commands and not _has_table(out, "attribution"):
            rc = max(rc, step("correlate", str(out)))
        if (
            rc <= 1
            and "report" in cli.commands
            and _has_table(out, "attribution")
            and not (out / "report.html").exists()
        ):
            rc = max(rc, step("report", str(out)))
    return rc


def _has_table(out: Path, table: str) -> bool:
    db = out / "incident.duckdb"
    if not db.is_file():
        return False
    import duckdb

    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return False
    try:
        q = "select count(*) from information_schema.tables where table_name = ?"
        return con.execute(q, [table]).fetchone()[0] > 0
    finally:
        con.close()


def cleanup_leftovers(outdir: Path) -> list[str]:
    """Undo what a killed run recorded in ``lab-state.json``: processes, mount, loop device."""
    state_file = outdir / "lab-state.json"
    if not state_file.is_file():
        raise UsageError(f"{state_file} not found")
    state = json.loads(state_file.read_text())
    done = []
    for name, pid in state.get("pids", {}).items():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # a tracer detaching its probes takes a moment
        done.append(f"killed {name} (pid {pid})")
    mnt = state.get("mountpoint")
    if mnt and os.path.ismount(mnt):
        unmount(mnt)
        done.append(f"unmounted {mnt}")
    if mnt and os.path.isdir(mnt):
        os.rmdir(mnt)
    dev, image = state.get("device"), state.get("image")
    if dev and image:
        out = subprocess.run(["losetup", "-nO", "BACK-FILE", dev], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip() == image:
            sh(["losetup", "-d", dev])
            done.append(f"detached {dev}")
    if image and Path(image).is_file():
        Path(image).unlink()
        done.append(f"removed {image}")
    state.update(pids={}, steps=[], clean=True)
    state_file.write_text(json.dumps(state, indent=1))
    return done


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# ---------------------------------------------------------------- matrix


def spread(values: list[float]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "runs": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": len(vals)}


def verdict(candidate: dict, baseline: dict) -> str:
    """Lower/higher only when the ranges over runs do not overlap; else within spread."""
    if not candidate["runs"] or not baseline["runs"]:
        return "n/a"
    if candidate["runs"] < 2 or baseline["runs"] < 2:
        return "one run: no spread"
    if candidate["max"] < baseline["min"]:
        return "lower"
    if candidate["min"] > baseline["max"]:
        return "higher"
    return "within spread"


# ---------------------------------------------------------------- commands


def _options(f):
    for opt in reversed(
        [
            click.option(
                "--duration",
                "duration_s",
                type=click.FloatRange(5, 3600),
                default=20.0,
                show_default=True,
                help="Seconds of production.",
            ),
            click.option(
                "--seed", type=int, default=1, show_default=True, help="Seed of message sizes, payloads and partitions."
            ),
            click.option(
                "--rate",
                type=click.FloatRange(1),
                default=1000.0,
                show_default=True,
                help="Messages per second, all producers together.",
            ),
            click.option(
                "--producers",
                type=click.IntRange(1, 64),
                default=4,
                show_default=True,
                help="Producer client instances (one connection each).",
            ),
            click.option(
                "--image-mb",
                type=click.IntRange(128),
                default=768,
                show_default=True,
                help="Size of the file-system image.",
            ),
            click.option(
                "--background-mb",
                type=click.IntRange(0),
                default=64,
                show_default=True,
                help="Size of each background writer file (0: no background writer).",
            ),
            click.option(
                "--background-mode",
                type=click.Choice(["fdatasync", "dsync", "buffered"]),
                default="fdatasync",
                show_default=True,
                help="How background files are flushed: one fdatasync per file, O_DSYNC writes, or never.",
            ),
            click.option(
                "--slo-ms",
                type=click.FloatRange(0, min_open=True),
                default=65.0,
                show_default=True,
                help="Produce latency SLO; requests at or above it are slow.",
            ),
            click.option(
                "--collect-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=lambda: os.environ.get("KFORENSICS_COLLECT_DIR", str(DEFAULT_COLLECT)),
                show_default="$KFORENSICS_COLLECT_DIR or collect/",
                help="The collection kit (its bpftrace/ programs are used).",
            ),
            click.option(
                "--image-dir",
                type=click.Path(file_okay=False, path_type=Path),
                default=None,
                help="Where images go (default: the run directory).",
            ),
            click.option("--no-pipeline", is_flag=True, help="Collect the bundle only; do not run the pipeline."),
        ]
    ):
        f = opt(f)
    return f


def _lab_options(kw: dict) -> LabOptions:
    return LabOptions(
        duration_s=kw["duration_s"],
        seed=kw["seed"],
        rate=kw["rate"],
        producers=kw["producers"],
        image_mb=kw["image_mb"],
        background_mb=kw["background_mb"],
        background_mode=kw["background_mode"],
        slo_ms=kw["slo_ms"],
        collect_dir=Path(kw["collect_dir"]).resolve(),
        image_dir=kw["image_dir"],
        pipeline=not kw["no_pipeline"],
    )


@click.group("lab")
def lab_group() -> None:
    """Make real produce-latency incidents on loop-mounted file systems and explain them.

    Needs root, loop devices, bpftrace, tcpdump and a JDK; refuses with the reason otherwise.
    """


@lab_group.command("run")
@click.option("--fs", "fs_name", type=click.Choice(list(CONFIGS)), required=True, help="File-system configuration.")
@click.option(
    "-o",
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Run directory: bundle/, out/ (the pipeline's), lab-run.json, evaluation.",
)
@_options
def lab_run(fs_name: str, outdir: Path, **kw) -> None:
    """Run the workload on one file-system configuration, collect a bundle, run the pipeline."""
    from pipeline.lab_checks import render_evaluation

    try:
        res = run_lab(CONFIGS[fs_name], outdir, _lab_options(kw), echo=click.echo)
    except LabInterrupted as exc:
        raise LabFailed(f"interrupted by {exc}; everything started was stopped and undone") from None
    click.echo(render_evaluation(res.honesty))
    if res.honesty.get("failures"):
        raise LabFailed("the pipeline's attributions disagree with the independent evidence: see above")


@lab_group.command("matrix")
@click.option(
    "-o",
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("lab-out"),
    show_default=True,
    help="Where runs, the table and the report go.",
)
@click.option(
    "--fs",
    "fs_names",
    multiple=True,
    type=click.Choice(list(CONFIGS)),
    help="Configurations (repeatable; default: all).",
)
@click.option("--runs", type=click.IntRange(1, 50), default=3, show_default=True, help="Runs per configuration.")
@_options
def lab_matrix(outdir: Path, fs_names: tuple[str, ...], runs: int, **kw) -> None:
    """Run every configuration several times (interleaved) and compare them, with run-to-run spread."""
    opts = _lab_options(kw)
    names = list(fs_names) or list(CONFIGS)
    reasons = preflight([CONFIGS[n] for n in names], opts.collect_dir)
    if reasons:
        raise LabRefused("the lab cannot run here: " + "; ".join(reasons))
    outdir.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    base_seed = opts.seed
    for rep in range(runs):  # interleaved: drift over time hits every configuration alike
        for name in names:
            opts.seed = base_seed + rep
            run_dir = outdir / f"{name}-{rep + 1}"
            click.echo(f"== {name} run {rep + 1}/{runs} (seed {opts.seed})")
            try:
                results.append(run_lab(CONFIGS[name], run_dir, opts, echo=click.echo))
            except LabInterrupted as exc:
                raise LabFailed(f"interrupted by {exc}; everything started was stopped and undone") from None
    _write_matrix(results, outdir, opts.slo_ms)


def _write_matrix(results: list[RunResult], outdir: Path, slo_ms: float) -> None:
    from pipeline.lab_checks import matrix_table, render_matrix

    names = list(dict.fromkeys(r.config for r in results))
    table = matrix_table(results, BASELINE if BASELINE in names else names[0], slo_ms)
    (outdir / "matrix.json").write_text(json.dumps(_jsonable(table), indent=1))
    text = render_matrix(table)
    (outdir / "matrix.md").write_text(text)
    click.echo(text)
    _compare(results, outdir, slo_ms)


@lab_group.command("table")
@click.argument("outdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pipeline", "rerun", is_flag=True, help="Run the pipeline again on every run's bundle first.")
def lab_table(outdir: Path, rerun: bool) -> None:
    """Rebuild a matrix's table from its run directories (e.g. after the pipeline changed)."""
    from pipeline.lab_checks import evaluate_run

    results = []
    order = list(CONFIGS)
    for run_file in sorted(outdir.glob("*/lab-run.json")):
        run = json.loads(run_file.read_text())
        if not (run_file.parent / "broker-requests.tsv").is_file():
            continue  # interrupted before the broker wrote its log
        slo = run.get("options", {}).get("slo_ms", 65.0)
        rd = run_file.parent
        rc = run_pipeline(rd / "bundle", rd / "out", click.echo) if rerun else run.get("pipeline_rc")
        ev = evaluate_run(rd, slo)
        run.update(evaluation=ev, pipeline_rc=rc)
        run_file.write_text(json.dumps(_jsonable(run), indent=1))
        results.append(RunResult(run["config"]["name"], rd, rd / "bundle", run, ev, rc))
    if not results:
        raise UsageError(f"no lab runs (*/lab-run.json) under {outdir}")
    results.sort(key=lambda r: (order.index(r.config) if r.config in order else len(order), r.outdir.name))
    _write_matrix(results, outdir, results[0].summary.get("options", {}).get("slo_ms", 65.0))


def _compare(results: list[RunResult], outdir: Path, slo_ms: float) -> None:
    """Hand the runs to ``kforensics compare`` where this build has it (baseline first)."""
    from pipeline.cli import cli

    if "compare" not in cli.commands:
        click.echo("compare: not available in this build; matrix.md holds the lab's own table")
        return
    done = [r for r in results if (r.outdir / "out" / "incident.duckdb").is_file()]
    done.sort(key=lambda r: (r.config != BASELINE, list(CONFIGS).index(r.config), r.outdir.name))
    if len(done) < 2:
        click.echo("compare: fewer than two runs have pipeline output")
        return
    cmd = [sys.executable, "-m", "pipeline", "compare", *(str(r.outdir / "out") for r in done)]
    for r in done:
        cmd += ["--label", r.outdir.name]
    cmd += ["--slo-ms", str(slo_ms), "-o", str(outdir)]
    with (outdir / "compare.txt").open("w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO).returncode
    click.echo(f"compare: exit {rc}; {outdir / 'compare.txt'} and {outdir / 'compare.html'}")


@lab_group.command("cleanup")
@click.argument("outdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def lab_cleanup(outdir: Path) -> None:
    """Undo what a killed run left behind (processes, mount, loop device, image)."""
    for line in cleanup_leftovers(outdir) or ["nothing left to clean"]:
        click.echo(line)


@lab_group.command("check")
@click.argument("outdir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--slo-ms", type=float, default=65.0, show_default=True, help="SLO used to call a request slow.")
def lab_check(outdir: Path, slo_ms: float) -> None:
    """Re-run the evaluation of a finished run directory (after re-running the pipeline)."""
    from pipeline.lab_checks import evaluate_run, render_evaluation

    ev = evaluate_run(outdir, slo_ms)
    click.echo(render_evaluation(ev))
    if ev.get("failures"):
        raise LabFailed("the pipeline's attributions disagree with the independent evidence")
