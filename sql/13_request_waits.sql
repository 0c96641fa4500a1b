-- stage:   13_request_waits
-- purpose: Monitor waits of the handler thread that served a request (the thread of its own
--          write), between the request's arrival and its own write, and the blocker: the thread
--          that wrote the same partition's segment across the wait (the write overlapping the
--          wait most). JFR's previousOwner is kept as a hint only (it is the last releaser).
--          The blocker's write explains the wait when the overlap covers explain_fraction of it;
--          its root is then journal_commit (proven commit under that write) or slow_write.
-- grain:   one row per produce partition whose handler waited (pp_id)
-- reads:   request_writes, produce, waits, writes, write_commits, threads, settings, clock_offsets
-- creates: request_waits
CREATE OR REPLACE TABLE request_waits AS
WITH s AS (
    SELECT *, to_microseconds(round((slack_ms + coalesce((SELECT max(spread_ms) FROM clock_offsets WHERE source IN ('ebpf', 'jfr')), 0)) * 1000)::BIGINT) AS slack
    FROM settings
),
own AS (
    SELECT rw.pp_id, rw.write_tid AS tid, rw.write_start_at, p.topic, p.partition, p.arrival_at, p.end_at,
        p.arrival_at - s.slack AS window_start_at, rw.write_start_at + s.slack AS window_end_at
    FROM request_writes rw JOIN produce p USING (pp_id) CROSS JOIN s
),
matched AS (
    SELECT o.*, w.wait_id, w.start_at AS wait_start_at, w.end_at AS wait_end_at, w.owner_hint_tid, w.monitor_address
    FROM own o
    ASOF JOIN waits w ON o.tid = w.tid AND o.window_start_at <= w.start_at
),
own_wait AS (
    SELECT
        m.*,
        greatest(0, (epoch_us(least(m.wait_end_at, coalesce(m.end_at, m.wait_end_at))) - epoch_us(greatest(m.wait_start_at, m.arrival_at))) / 1000.0) AS wait_ms
    FROM matched m
    WHERE m.wait_end_at <= m.window_end_at
),
blockers AS (
    SELECT
        o.pp_id,
        w.write_id AS blocker_write_id,
        w.tid AS blocker_tid,
        w.latency_ms AS blocker_write_latency_ms,
        w.start_at AS blocker_write_start_at,
        w.end_at AS blocker_write_end_at,
        (epoch_us(least(w.end_at, o.wait_end_at)) - epoch_us(greatest(w.start_at, o.wait_start_at))) / 1000.0 AS blocker_overlap_ms
    FROM own_wait o
    JOIN writes w
        ON w.topic = o.topic AND w.partition = o.partition AND w.tid <> o.tid
        AND w.start_at < o.wait_end_at AND w.end_at > o.wait_start_at
    CROSS JOIN s
    WHERE w.latency_ms >= s.min_write_ms
    QUALIFY row_number() OVER (PARTITION BY o.pp_id ORDER BY blocker_overlap_ms DESC, w.write_id) = 1
)
SELECT
    o.pp_id,
    o.wait_id,
    o.tid AS handler_tid,
    o.wait_start_at,
    o.wait_end_at,
    o.wait_ms,
    o.monitor_address,
    o.owner_hint_tid,
    b.blocker_write_id,
    b.blocker_tid,
    bt.name AS blocker_thread,
    b.blocker_write_start_at,
    b.blocker_write_end_at,
    b.blocker_write_latency_ms,
    b.blocker_overlap_ms,
    CASE
        WHEN b.blocker_overlap_ms IS NULL OR b.blocker_overlap_ms < s.explain_fraction * (epoch_us(o.wait_end_at) - epoch_us(o.wait_start_at)) / 1000.0 THEN 'none'
        WHEN coalesce(wc.proven, false) THEN 'journal_commit'
        ELSE 'slow_write'
    END AS blocker_root,
    wc.commit_start_at,
    wc.commit_latency_ms
FROM own_wait o
LEFT JOIN blockers b USING (pp_id)
LEFT JOIN threads bt ON bt.tid = b.blocker_tid
LEFT JOIN write_commits wc ON wc.write_id = b.blocker_write_id AND wc.proven
CROSS JOIN s;
