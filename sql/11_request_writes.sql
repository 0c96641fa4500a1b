-- stage:   11_request_writes
-- purpose: The write that put each produce partition's batch on disk. Exact links first (crc,
--          producer_seq, message_id: see exact_links). For the rest, a time window on the same
--          segment file: the first write of the same byte count (the broker writes the request's
--          records as received) on the same topic-partition that starts after the request arrived
--          and ends before its response ends (give or take the slack and the clock spread);
--          a write claimed twice goes to the request that arrived last before it
--          (link_method = time_overlap).
-- grain:   one row per linked produce partition (pp_id); a write links at most one request
-- reads:   exact_links, produce, writes, settings, clock_offsets
-- creates: request_writes
CREATE OR REPLACE TABLE request_writes AS
WITH s AS (
    SELECT to_microseconds(round((slack_ms + coalesce((SELECT spread_ms FROM clock_offsets WHERE source = 'ebpf'), 0)) * 1000)::BIGINT) AS slack
    FROM settings
),
exact AS (
    SELECT pp_id, write_id, link_method FROM exact_links WHERE write_id IS NOT NULL
),
free_p AS (
    SELECT p.pp_id, p.topic, p.partition, coalesce(p.records_bytes, -1) AS bytes, p.arrival_at,
        p.arrival_at - s.slack AS window_start_at, p.end_at + s.slack AS window_end_at
    FROM produce p CROSS JOIN s
    WHERE NOT EXISTS (SELECT 1 FROM exact e WHERE e.pp_id = p.pp_id)
),
free_w AS (
    SELECT w.write_id, w.topic, w.partition, coalesce(w.bytes, -1) AS bytes, w.start_at, w.end_at
    FROM writes w
    WHERE NOT EXISTS (SELECT 1 FROM exact e WHERE e.write_id = w.write_id)
),
windowed AS (
    SELECT p.pp_id, w.write_id, p.arrival_at, w.end_at AS write_end_at, p.window_end_at
    FROM free_p p
    ASOF JOIN free_w w
        ON p.topic = w.topic AND p.partition = w.partition AND p.bytes = w.bytes
        AND p.window_start_at <= w.start_at
),
windowed_ok AS (
    SELECT pp_id, write_id, 'time_overlap' AS link_method
    FROM windowed
    WHERE window_end_at IS NULL OR write_end_at <= window_end_at
    QUALIFY row_number() OVER (PARTITION BY write_id ORDER BY arrival_at DESC, pp_id) = 1
)
SELECT l.pp_id, l.write_id, l.link_method, w.tid AS write_tid, w.start_at AS write_start_at,
    w.end_at AS write_end_at, w.latency_ms AS write_latency_ms
FROM (SELECT * FROM exact UNION ALL SELECT * FROM windowed_ok) l
JOIN writes w USING (write_id);
