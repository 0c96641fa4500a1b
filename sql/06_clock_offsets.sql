-- stage:   06_clock_offsets
-- purpose: The offset added to each source's clock to put it on the capture's, and how well it
--          is known. Manifest offsets first; then a residual estimated from evidence:
--          * ebpf: exactly linked request/write pairs bound it: the write starts after the request
--            arrived and ends before its response ends, so arrival - write_start <= d <=
--            end - write_end; the estimate is the middle of the intersection of all pairs'
--            intervals, its spread the intersection's width (if the intervals do not intersect,
--            the median of their middles, spread = the overshoot).
--          * jfr: jdk.FileWrite events paired with the same thread's traced write of the same
--            size (nearest in time): the median difference, spread = max - min.
--          * capture and threaddump: the manifest's offset only.
--          Also each source's aligned coverage (first and last instant seen).
-- grain:   one row per source: capture, ebpf, journal, jfr, threaddump
-- reads:   settings, produce, exact_links, disk_writes, jvm_file_writes, monitor_waits,
--          thread_samples, kernel_calls, jvm_threads
-- creates: clock_offsets
CREATE OR REPLACE TABLE clock_offsets AS
WITH s AS (SELECT * FROM settings),
pairs AS (
    SELECT
        epoch_us(p.arrival_at) - epoch_us(w.start_at_m) AS lo_us,
        epoch_us(p.end_at) - epoch_us(w.end_at_m) AS hi_us
    FROM exact_links l
    JOIN produce p USING (pp_id)
    JOIN disk_writes w USING (write_id)
    WHERE p.end_at IS NOT NULL
),
ebpf_bounds AS (
    SELECT count(*) AS n, max(lo_us) AS lo, min(hi_us) AS hi, median((lo_us + hi_us) / 2.0) AS mid FROM pairs
),
ebpf AS (
    SELECT
        'ebpf' AS source,
        s.ebpf_offset_ms AS manifest_offset_ms,
        CASE WHEN n = 0 THEN NULL WHEN lo <= hi THEN (lo + hi) / 2000.0 ELSE mid / 1000.0 END AS estimated_ms,
        CASE WHEN n = 0 THEN NULL ELSE abs(hi - lo) / 1000.0 END AS spread_ms,
        n AS pairs,
        CASE WHEN n = 0 THEN 'manifest' WHEN lo <= hi THEN 'linked_pairs' ELSE 'linked_pairs_inconsistent' END AS method
    FROM ebpf_bounds, s
),
ebpf_shift AS (SELECT to_microseconds(round(coalesce(estimated_ms, 0) * 1000)::BIGINT) AS shift FROM ebpf),
jfr_pairs AS (
    SELECT
        epoch_us(w.start_at_m + e.shift) - epoch_us(j.start_at) AS diff_us
    FROM jvm_file_writes j
    JOIN disk_writes w ON w.tid = j.tid AND w.bytes = j.bytes
        AND w.start_at_m BETWEEN j.start_at - INTERVAL 5 SECOND AND j.start_at + INTERVAL 5 SECOND
    CROSS JOIN ebpf_shift e
    WHERE j.event_type = 'jdk.FileWrite'
    QUALIFY row_number() OVER (
        PARTITION BY j.artifact_id, j.position ORDER BY abs(epoch_us(w.start_at_m) - epoch_us(j.start_at))
    ) = 1
),
jfr AS (
    SELECT
        'jfr' AS source,
        s.jfr_offset_ms AS manifest_offset_ms,
        CASE WHEN count(diff_us) = 0 THEN NULL ELSE median(diff_us) / 1000.0 - s.jfr_offset_ms END AS estimated_ms,
        CASE WHEN count(diff_us) = 0 THEN NULL ELSE (max(diff_us) - min(diff_us)) / 1000.0 END AS spread_ms,
        count(diff_us) AS pairs,
        CASE WHEN count(diff_us) = 0 THEN 'manifest' ELSE 'file_write_pairs' END AS method
    FROM s LEFT JOIN jfr_pairs ON true
    GROUP BY s.jfr_offset_ms
),
offsets AS (
    SELECT 'capture' AS source, capture_offset_ms AS manifest_offset_ms, NULL::DOUBLE AS estimated_ms,
        NULL::DOUBLE AS spread_ms, 0::BIGINT AS pairs, 'manifest' AS method FROM s
    UNION ALL SELECT * FROM ebpf
    UNION ALL SELECT 'journal', manifest_offset_ms, estimated_ms, spread_ms, pairs, 'same clock as ebpf' FROM ebpf
    UNION ALL SELECT * FROM jfr
    UNION ALL SELECT 'threaddump', threaddump_offset_ms, NULL, NULL, 0, 'manifest' FROM s
),
coverage AS (
    SELECT 'capture' AS source, min(arrival_at) AS first_at, max(coalesce(end_at, arrival_at)) AS last_at, count(*) AS n FROM produce
    UNION ALL SELECT 'ebpf', min(raw_start_at), max(raw_end_at), count(*) FROM disk_writes
    UNION ALL SELECT 'journal', min(start_at), max(end_at), count(*) FROM kernel_calls
    UNION ALL SELECT 'jfr', min(t0), max(t1), count(*) FROM (
        SELECT start_at AS t0, end_at AS t1 FROM monitor_waits
        UNION ALL SELECT start_at, end_at FROM jvm_file_writes
        UNION ALL SELECT "at", "at" FROM thread_samples
    )
    UNION ALL SELECT 'threaddump', min(dump_at), max(dump_at), count(*) FROM jvm_threads
)
SELECT
    o.source,
    o.manifest_offset_ms,
    o.estimated_ms,
    o.manifest_offset_ms + coalesce(o.estimated_ms, 0) AS offset_ms,
    o.spread_ms,
    o.pairs,
    o.method,
    -- coverage on the capture's clock (raw instants shifted by the offset used)
    c.first_at + to_microseconds(round((CASE WHEN o.source = 'capture' THEN 0 ELSE o.manifest_offset_ms END
        + coalesce(o.estimated_ms, 0)) * 1000)::BIGINT) AS first_at,
    c.last_at + to_microseconds(round((CASE WHEN o.source = 'capture' THEN 0 ELSE o.manifest_offset_ms END
        + coalesce(o.estimated_ms, 0)) * 1000)::BIGINT) AS last_at,
    c.n AS rows
FROM offsets o JOIN coverage c USING (source);
