-- stage:   15_handler_busy
-- purpose: When each request handler thread is known to be busy: from the first evidence of a
--          request on it (its monitor wait or its write) to the end of its write, plus monitor
--          waits of handler threads that no request claimed. A slow request's interval carries its
--          own first-level root (its slow write's, or its blocker's), for queue waits behind it.
-- grain:   one row per busy interval
-- reads:   request_writes, request_waits, write_commits, produce, waits, threads, settings
-- creates: handler_busy
CREATE OR REPLACE TABLE handler_busy AS
WITH s AS (SELECT * FROM settings),
linked AS (
    SELECT
        rw.write_tid AS tid,
        least(rq.wait_start_at, rw.write_start_at) AS start_at,
        rw.write_end_at AS end_at,
        rw.pp_id,
        CASE
            WHEN NOT coalesce(p.slow, false) THEN NULL
            WHEN rw.write_latency_ms >= s.explain_fraction * p.latency_ms
                THEN CASE WHEN coalesce(wc.proven, false) THEN 'journal_commit' ELSE 'slow_write' END
            WHEN rq.wait_ms >= s.explain_fraction * p.latency_ms THEN rq.blocker_root
            ELSE 'none'
        END AS root_cause
    FROM request_writes rw
    JOIN produce p USING (pp_id)
    LEFT JOIN request_waits rq USING (pp_id)
    LEFT JOIN write_commits wc ON wc.write_id = rw.write_id
    CROSS JOIN s
),
unclaimed AS (
    SELECT w.tid, w.start_at, w.end_at, NULL::BIGINT AS pp_id, NULL::VARCHAR AS root_cause
    FROM waits w
    JOIN threads t ON t.tid = w.tid AND t.is_handler
    WHERE NOT EXISTS (SELECT 1 FROM request_waits rq WHERE rq.wait_id = w.wait_id)
)
SELECT * FROM linked
UNION ALL
SELECT * FROM unclaimed;
