#!/usr/bin/env bash
# pack.sh — pack a folder written by collect.sh into BUNDLE.tar.gz for `kforensics run`.
#
# Usage: pack.sh DIR [BUNDLE.tar.gz]
# Writes a bundle.toml first when DIR has none (date, zone and boot time of this host: run
# it on the broker right after the capture in that case). Prints the archive's path.
set -euo pipefail

DIR=${1:?usage: pack.sh DIR [BUNDLE.tar.gz]}
[ -d "$DIR" ] || { echo "pack: $DIR is not a folder" >&2; exit 2; }
DIR=$(cd "$DIR" && pwd)
ARCHIVE=${2:-$DIR.tar.gz}

if [ ! -f "$DIR/bundle.toml" ]; then
	TZ_NAME=$(timedatectl show -p Timezone --value 2>/dev/null || cat /etc/timezone 2>/dev/null || true)
	{
		echo "# written by pack.sh on $(hostname) at $(date -u +%FT%TZ)"
		[ -n "$TZ_NAME" ] && echo "timezone = \"$TZ_NAME\""
		echo "date = \"$(date +%F)\""
		if command -v python3 >/dev/null; then
			echo "boot_time_ns = $(python3 -c 'import time; print(time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC))')"
		fi
	} >"$DIR/bundle.toml"
fi
# bpftrace stderr logs are kept beside the traces only when they say more than the
# usual RLIMIT_MEMLOCK notice.
for err in "$DIR"/ebpf/*.err; do
	[ -f "$err" ] || continue
	if ! grep -qv -e 'RLIMIT_MEMLOCK' -e '^$' "$err"; then rm -f "$err"; fi
done
tar -C "$(dirname "$DIR")" -czf "$ARCHIVE" "$(basename "$DIR")"
echo "$ARCHIVE"
