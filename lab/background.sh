#!/bin/sh
# Background writeback pressure of a busy broker on the same file system: other partitions'
# segments written 1 MiB at a time, flushed, and the oldest deleted as retention does.
# usage: background.sh DIR FILE_MB KEEP [MODE]
#   MODE fdatasync (default): buffered writes, one fdatasync per file (a log flush)
#        dsync:               every 1 MiB write is synchronous (O_DSYNC)
#        buffered:            never flushed here (the kernel's writeback decides)
#   FILE_MB 0: no background writes at all
dir=$1; mb=$2; keep=$3; mode=${4:-fdatasync}
[ "$mb" -gt 0 ] || exec sleep 1000000
case $mode in
    fdatasync) flags="conv=fdatasync" ;;
    dsync) flags="oflag=dsync" ;;
    buffered) flags="" ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
i=0
while :; do
    dd if=/dev/zero of="$dir/segment-$i.log" bs=1M count="$mb" $flags status=none || sleep 1
    old=$((i - keep))
    [ $old -ge 0 ] && rm -f "$dir/segment-$old.log"
    i=$((i + 1))
done
