-- stage:   07_writes
-- purpose: Segment writes on the capture's clock. Traced writes (eBPF): raw instants plus the eBPF
--          offset used (manifest + estimate, see clock_offsets). Then JFR's jdk.FileWrite events
--          on segment files (recorded above JFR's threshold, typically 10-20 ms) that no traced
--          write already shows (same thread and size, starting within the slack): without eBPF
--          logs they still prove a slow write and its thread, linkable only by the time window
--          (no file offset). The raw instants stay beside the aligned ones; source says which.
-- grain:   one row per write (write_id)
-- reads:   disk_writes, clock_offsets, jvm_file_writes, settings
-- creates: writes
CREATE OR REPLACE TABLE writes AS
WITH o AS (
    SELECT
        to_microseconds(round(coalesce(max(estimated_ms) FILTER (WHERE source = 'ebpf'), 0) * 1000)::BIGINT) AS ebpf_shift,
        to_microseconds(round(coalesce(max(offset_ms) FILTER (WHERE source = 'jfr'), 0) * 1000)::BIGINT) AS jfr_shift
    FROM clock_offsets
),
s AS (SELECT to_microseconds(round(slack_ms * 1000)::BIGINT) AS slack FROM settings),
traced AS (
    SELECT
        w.write_id, 'ebpf' AS source, w.tid, w.comm, w.topic, w.partition, w.segment, w.file_offset, w.bytes,
        w.start_at_m + o.ebpf_shift AS start_at, w.end_at_m + o.ebpf_shift AS end_at, w.latency_ms,
        w.raw_start_at, w.raw_end_at, w.path
    FROM disk_writes w CROSS JOIN o
),
jfr AS (
    SELECT
        j.*,
        regexp_extract(j.path, '([^/]+)-(\d+)/(\d{20}\.log)$', ['topic', 'partition', 'segment']) AS parts
    FROM jvm_file_writes j
    WHERE j.event_type = 'jdk.FileWrite' AND regexp_matches(j.path, '[^/]+-\d+/\d{20}\.log$')
),
jfr_only AS (
    SELECT
        (SELECT coalesce(max(write_id), 0) FROM disk_writes)
            + row_number() OVER (ORDER BY j.start_at, j.artifact_id, j.position) AS write_id,
        'jfr' AS source, j.tid, NULL AS comm, j.parts.topic AS topic, j.parts.partition::INTEGER AS partition,
        j.parts.segment AS segment, NULL::BIGINT AS file_offset, j.bytes,
        j.start_at + o.jfr_shift AS start_at, j.end_at + o.jfr_shift AS end_at, j.duration_ms AS latency_ms,
        j.start_at AS raw_start_at, j.end_at AS raw_end_at, j.path
    FROM jfr j CROSS JOIN o CROSS JOIN s
    WHERE NOT EXISTS (
        SELECT 1 FROM traced t
        WHERE t.tid = j.tid AND t.bytes = j.bytes
            AND t.start_at BETWEEN j.start_at + o.jfr_shift - s.slack AND j.start_at + o.jfr_shift + s.slack
    )
)
SELECT * FROM traced
UNION ALL
SELECT * FROM jfr_only;
