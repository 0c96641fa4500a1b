# shellcheck shell=bash
# stop_tracers PID... : end tracing processes so that their output is complete. Sourced by
# collect.sh and by the fixture capture scripts (fixtures/ebpf/capture*.sh).
#
# SIGINT makes bpftrace print its closing anchor. It is repeated every second (a signal
# that lands while a program is still starting is lost), then TERM after 10 s and KILL
# after 14 s; every process is reaped.
stop_tracers() {
	local p i alive
	for i in $(seq 150); do
		alive=0
		for p in "$@"; do
			if kill -0 "$p" 2>/dev/null; then
				alive=1
				if [ $((i % 10)) = 1 ]; then kill -INT "$p" 2>/dev/null || true; fi
				if [ "$i" = 100 ]; then kill -TERM "$p" 2>/dev/null || true; fi
				if [ "$i" = 140 ]; then kill -KILL "$p" 2>/dev/null || true; fi
			fi
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
