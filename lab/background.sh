#!/bin/sh
# Background writeback pressure of a busy broker on the same file system: other partitions'
# segments being written (buffered, 1 MiB at a time) and old ones deleted by retention.
# usage: background.sh DIR FILE_MB KEEP     (FILE_MB 0: do nothing)
dir=$1; mb=$2; keep=$3
[ "$mb" -gt 0 ] || exec sleep 1000000
i=0
while :; do
    dd if=/dev/zero of="$dir/segment-$i.log" bs=1M count="$mb" status=none || sleep 1
    old=$((i - keep))
    [ $old -ge 0 ] && rm -f "$dir/segment-$old.log"
    i=$((i + 1))
done
