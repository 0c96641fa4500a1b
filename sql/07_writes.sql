-- stage:   07_writes
-- purpose: Traced segment writes on the capture's clock: raw instants plus the eBPF offset used
--          (manifest + estimate, see clock_offsets). The raw instants stay beside them.
-- grain:   one row per traced write (write_id)
-- reads:   disk_writes, clock_offsets
-- creates: writes
CREATE OR REPLACE TABLE writes AS
WITH o AS (SELECT to_microseconds(round(coalesce(estimated_ms, 0) * 1000)::BIGINT) AS shift FROM clock_offsets WHERE source = 'ebpf')
SELECT
    w.write_id,
    w.tid,
    w.comm,
    w.topic,
    w.partition,
    w.segment,
    w.file_offset,
    w.bytes,
    w.start_at_m + o.shift AS start_at,
    w.end_at_m + o.shift AS end_at,
    w.latency_ms,
    w.raw_start_at,
    w.raw_end_at,
    w.path
FROM disk_writes w CROSS JOIN o;
