#!/usr/bin/env bash
# collect.sh — capture a produce-latency incident bundle on a Kafka broker.
#
# Runs, for SECONDS, side by side: tcpdump on the Kafka ports, the bpftrace programs in
# bpftrace/ (writes per thread with parent dir, offset, bytes and latency; journal commit
# windows; ext4_dirty_inode latency where kprobes exist, else off-CPU stacks inside write()),
# periodic jstack thread dumps and a JFR (or async-profiler lock) recording of the broker,
# then copies the active segments and writes bundle.toml. Pack the result with pack.sh.
#
# Usage (root):
#   collect.sh -d DATA_DIR [-p BROKER_PID] [-t SECONDS] [-o OUTDIR] [-P PORTS] [-i IFACE]
#              [-m MIN_US] [-j JSTACK_EVERY_S] [-a] [-S] [-c SERVER_PROPERTIES]
#   -d  Kafka log directory (one of log.dirs) on the file system to trace
#   -p  broker JVM pid (thread dumps and JFR need it; default: the kafka.Kafka process)
#   -t  seconds to capture (default 60)
#   -o  output folder (default ./kforensics-bundle-<host>-<UTC time>)
#   -P  Kafka ports, comma-separated (default 9092)
#   -i  capture interface for tcpdump (default any)
#   -m  print only writes slower than MIN_US microseconds (default 0: every write, which
#       the request-to-write linking needs; raise it on very busy brokers)
#   -j  seconds between thread dumps (default 10)
#   -a  use async-profiler (asprof on PATH or $ASPROF) in lock mode instead of JFR
#   -S  do not copy segments
#   -c  server.properties, to read broker.id / node.id for bundle.toml
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BT=$HERE/bpftrace
DATA_DIR="" PID="" SECS=60 OUT="" PORTS=9092 IFACE=any MIN_US=0 JSTACK_EVERY=10
USE_ASPROF=0 COPY_SEGMENTS=1 SERVER_PROPS=""
while getopts "d:p:t:o:P:i:m:j:aSc:h" opt; do
	case $opt in
	d) DATA_DIR=$OPTARG ;;
	p) PID=$OPTARG ;;
	t) SECS=$OPTARG ;;
	o) OUT=$OPTARG ;;
	P) PORTS=$OPTARG ;;
	i) IFACE=$OPTARG ;;
	m) MIN_US=$OPTARG ;;
	j) JSTACK_EVERY=$OPTARG ;;
	a) USE_ASPROF=1 ;;
	S) COPY_SEGMENTS=0 ;;
	c) SERVER_PROPS=$OPTARG ;;
	*) sed -n '2,/^set /p' "$0" | sed 's/^# \{0,1\}//;/^set /d' >&2; exit 2 ;;
	esac
done
die() { echo "collect: $*" >&2; exit 2; }
log() { echo "collect: $*" >&2; }
[ "$(id -u)" = 0 ] || die "run as root (bpftrace and tcpdump need it)"
[ -n "$DATA_DIR" ] && [ -d "$DATA_DIR" ] || die "-d DATA_DIR: a Kafka log directory is required"
command -v bpftrace >/dev/null || die "bpftrace not found"
OUT=${OUT:-./kforensics-bundle-$(hostname -s)-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"/ebpf "$OUT"/jvm || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "$PID" ]; then PID=$(pgrep -f 'kafka\.Kafka' | head -1 || true); fi

# Kernel tracing needs tracefs; its device number filter is the kernel's (major << 20) | minor.
[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
ST_DEV=$(stat -c %d "$DATA_DIR")
MAJOR=$(((ST_DEV >> 8) & 0xfff))
MINOR=$(((ST_DEV & 0xff) | ((ST_DEV >> 12) & 0xfff00)))
DEV=$(((MAJOR << 20) | MINOR))
FSTYPE=$(findmnt -n -o FSTYPE --target "$DATA_DIR" 2>/dev/null || stat -f -c %T "$DATA_DIR")
log "data dir $DATA_DIR: $FSTYPE on $MAJOR:$MINOR (dev $DEV); broker pid ${PID:-unknown}; $SECS s"

PIDS=()
DUMPS_PID=""
# shellcheck source=stop_tracers.sh
. "$HERE/stop_tracers.sh"
stop_all() { # the thread-dump loop, then every tracer (bpftrace needs SIGINT to finish its output)
	[ -n "$DUMPS_PID" ] && kill -TERM "$DUMPS_PID" 2>/dev/null
	[ "${#PIDS[@]}" = 0 ] || stop_tracers "${PIDS[@]}"
	PIDS=()
}
as_jvm_user() { # jcmd must run as the JVM's user
	local uid
	uid=$(stat -c %u "/proc/$PID")
	if [ "$uid" = 0 ]; then "$@"
	elif command -v runuser >/dev/null; then runuser -u "$(id -nu "$uid")" -- "$@"
	else sudo -u "#$uid" "$@"; fi
}
trap 'stop_all; exit 130' INT TERM

# Local date, zone and the boot time, written before tracing starts.
DATE_LOCAL=$(date +%F)
TZ_NAME=$(timedatectl show -p Timezone --value 2>/dev/null || cat /etc/timezone 2>/dev/null ||
	readlink /etc/localtime 2>/dev/null | sed 's|.*/zoneinfo/||' || true)
BOOT_NS=""
if command -v python3 >/dev/null; then
	BOOT_NS=$(python3 -c 'import time; print(time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC))')
fi

# 1. Packets on the Kafka ports.
if command -v tcpdump >/dev/null; then
	FILTER=$(echo "$PORTS" | tr ',' '\n' | sed 's/^/tcp port /' | paste -sd' ' | sed 's/ tcp/ or tcp/g')
	tcpdump -i "$IFACE" -s 0 -B 65536 -U -w "$OUT/capture.pcap" "$FILTER" 2>"$OUT/tcpdump.err" &
	PIDS+=($!)
else
	log "tcpdump not found: no capture"
fi

# 2. Kernel traces. Writes, and journal commits (ext4) or log writes (xfs), from tracepoints;
#    ext4_dirty_inode and jbd2 function latency where kprobes exist, else off-CPU stacks
#    inside write().
run_bt() { # name args...
	local name=$1
	shift
	bpftrace "$BT/$name.bt" "$@" >"$OUT/ebpf/$name.txt" 2>"$OUT/ebpf/$name.err" &
	PIDS+=($!)
}
run_bt fs_writes "$DEV" "$MIN_US"
case $FSTYPE in
ext4 | ext3) run_bt journal "$DEV" ;;
xfs) run_bt xfs_log "$DEV" ;;
*) log "no journal tracing for $FSTYPE" ;;
esac
if bpftrace -l 'kprobe:ext4_dirty_inode' 2>/dev/null | grep -q ext4_dirty_inode; then
	run_bt journal_kprobes 1000
else
	log "no kprobes on this kernel: tracing off-CPU stacks inside write() instead"
	run_bt offcpu_write "$DEV" 1000
fi

# Java monitor contention per thread from HotSpot's USDT probes, when the broker runs with
# -XX:+DTraceMonitorProbes (it cannot be switched on at run time).
if [ -n "$PID" ] && tr '\0' ' ' <"/proc/$PID/cmdline" | grep -q -e '+DTraceMonitorProbes' -e '+ExtendedDTraceProbes'; then
	LIBJVM=$(grep -m1 -o '/[^ ]*/libjvm\.so' "/proc/$PID/maps" || true)
	if [ -n "$LIBJVM" ]; then
		bpftrace -p "$PID" "$BT/monitor_waits.bt" "$LIBJVM" 1000 >"$OUT/ebpf/monitor_waits.txt" 2>"$OUT/ebpf/monitor_waits.err" &
		PIDS+=($!)
	fi
fi

# 3. The JVM: JFR (or async-profiler lock profiling) and periodic thread dumps.
if [ -n "$PID" ]; then
	if [ "$USE_ASPROF" = 1 ]; then
		ASPROF=${ASPROF:-$(command -v asprof || true)}
		[ -n "$ASPROF" ] || die "-a: asprof not found (set ASPROF=/path/to/asprof)"
		"$ASPROF" -e lock --lock 10ms -d "$SECS" -f "$OUT/jvm/lock.jfr" "$PID" >"$OUT/jvm/asprof.log" 2>&1 &
		PIDS+=($!)
	elif command -v jcmd >/dev/null; then
		# settings=profile records JavaMonitorEnter >= 10 ms, FileWrite/FileForce >= 10 ms
		as_jvm_user jcmd "$PID" JFR.start name=kforensics settings=profile \
			duration="${SECS}s" filename="$OUT/jvm/recording.jfr" >"$OUT/jvm/jfr.log" 2>&1 ||
			log "JFR.start failed: see jvm/jfr.log"
	fi
	(
		end=$(($(date +%s) + SECS))
		while [ "$(date +%s)" -lt "$end" ]; do
			f="$OUT/jvm/threads-$(date -u +%Y%m%dT%H%M%S.%NZ).txt"
			as_jvm_user jcmd "$PID" Thread.print -l >"$f" 2>&1 ||
				jstack -l "$PID" >"$f" 2>&1 || rm -f "$f"
			sleep "$JSTACK_EVERY"
		done
	) &
	DUMPS_PID=$!
fi

# The capture window starts once every bpftrace program has attached (compiling takes seconds).
for f in "$OUT"/ebpf/*.txt; do
	for _ in $(seq 600); do
		grep -q '^# columns' "$f" 2>/dev/null && break
		sleep 0.1
	done
	grep -q '^# columns' "$f" || log "$(basename "$f" .txt) did not start: see ${f%.txt}.err"
done
log "capturing for $SECS s (Ctrl-C stops early)"
sleep "$SECS" &
wait $! || true
stop_all
if [ -n "$PID" ] && [ "$USE_ASPROF" = 0 ] && command -v jcmd >/dev/null; then
	sleep 2 # JFR writes its file when the duration ends
fi

# 4. The active segment of every partition, with partition.metadata (topic id).
if [ "$COPY_SEGMENTS" = 1 ]; then
	for part in "$DATA_DIR"/*-[0-9]*; do
		[ -d "$part" ] || continue
		seg=$(ls "$part"/*.log 2>/dev/null | sort | tail -1)
		[ -n "$seg" ] || continue
		mkdir -p "$OUT/segments/$(basename "$part")"
		cp -p "$seg" "$OUT/segments/$(basename "$part")/"
		[ -f "$part/partition.metadata" ] && cp -p "$part/partition.metadata" "$OUT/segments/$(basename "$part")/"
	done
fi

# 5. bundle.toml: what the pipeline cannot read from the files themselves.
BROKER_ID=""
if [ -n "$SERVER_PROPS" ] && [ -f "$SERVER_PROPS" ]; then
	BROKER_ID=$(grep -E '^(broker\.id|node\.id)=' "$SERVER_PROPS" | head -1 | cut -d= -f2 | tr -d ' ')
fi
{
	echo "# written by collect.sh on $(hostname) at $(date -u +%FT%TZ)"
	[ -n "$BROKER_ID" ] && echo "broker_id = $BROKER_ID"
	echo "kafka_ports = [$(echo "$PORTS" | sed 's/,/, /g')]"
	[ -n "$TZ_NAME" ] && echo "timezone = \"$TZ_NAME\""
	echo "date = \"$DATE_LOCAL\""
	[ -n "$BOOT_NS" ] && echo "boot_time_ns = $BOOT_NS"
	echo "description = \"$FSTYPE data dir $DATA_DIR, $SECS s, writes >= $MIN_US us\""
} >"$OUT/bundle.toml"
find "$OUT" -name '*.err' -empty -delete
log "done: $OUT (pack it with $HERE/pack.sh $OUT)"
