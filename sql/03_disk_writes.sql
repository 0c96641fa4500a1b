-- stage:   03_disk_writes
-- purpose: Segment writes traced by eBPF, numbered, with the manifest's eBPF clock offset applied
--          (the estimated offset is added in 07_writes). A tool that prints only the end time
--          gets start = end - latency.
-- grain:   one row per traced write (write_id)
-- reads:   fs_writes, settings
-- creates: disk_writes
CREATE OR REPLACE TABLE disk_writes AS
WITH s AS (SELECT to_microseconds(round(ebpf_offset_ms * 1000)::BIGINT) AS shift FROM settings),
w AS (
    SELECT
        *,
        coalesce(start_at, end_at - to_microseconds(round(latency_ms * 1000)::BIGINT)) AS start_raw,
        coalesce(end_at, start_at + to_microseconds(round(latency_ms * 1000)::BIGINT)) AS end_raw
    FROM fs_writes
    WHERE coalesce(operation, 'write') = 'write' AND topic IS NOT NULL
)
SELECT
    row_number() OVER (ORDER BY w.start_raw, w.artifact_id, w.position) AS write_id,
    w.artifact_id,
    w.position,
    w.tid,
    w.comm,
    w.bytes,
    w.file_offset,
    w.path,
    w.topic,
    w.partition,
    w.segment,
    w.start_raw AS raw_start_at,
    w.end_raw AS raw_end_at,
    coalesce(w.latency_ms, (epoch_us(w.end_raw) - epoch_us(w.start_raw)) / 1000.0) AS latency_ms,
    w.start_raw + s.shift AS start_at_m,
    w.end_raw + s.shift AS end_at_m
FROM w CROSS JOIN s;
