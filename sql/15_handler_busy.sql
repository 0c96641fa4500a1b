-- stage:   15_handler_busy
-- purpose: When each request handler thread is known to be busy with a request: to the end of
--          the request's last write, from the moment it took the request, which is the later of
--          the request being ready (arrival, or the response ahead of it on its connection) and the
--          end of the thread's previous request (a handler takes a ready request as soon as it is
--          free), or the first evidence of the request on it (a wait or a write) if earlier. Plus
--          monitor waits of handler threads that no slow request claimed. A slow request's
--          interval carries its own first-level root (its slowest write's, or its longest wait's
--          blocker's), for queue waits behind it.
-- grain:   one row per busy interval (a produce request, or an unclaimed wait)
-- reads:   request_writes, request_waits, write_commits, produce, head_of_line, waits, threads, settings
-- creates: handler_busy
CREATE OR REPLACE TABLE handler_busy AS
WITH s AS (SELECT * FROM settings),
req AS (
    SELECT
        p.conn_id,
        p.correlation_id,
        min(p.pp_id) AS pp_id,
        bool_or(p.slow) AS slow,
        max(p.latency_ms) AS latency_ms,
        arg_min(rw.write_tid, rw.write_start_at) AS tid,
        min(rw.write_start_at) AS first_write_at,
        greatest(min(p.arrival_at), coalesce(max(h.pred_end_at), min(p.arrival_at))) AS ready_at,
        max(rw.write_end_at) AS last_write_end_at,
        max(rw.write_latency_ms) AS write_ms,
        arg_max(rw.write_id, rw.write_latency_ms) AS longest_write_id
    FROM produce p JOIN request_writes rw USING (pp_id) LEFT JOIN head_of_line h USING (pp_id)
    GROUP BY p.conn_id, p.correlation_id
),
taken AS (
    SELECT *, lag(last_write_end_at) OVER (PARTITION BY tid ORDER BY first_write_at, conn_id, correlation_id) AS prev_end_at
    FROM req
),
req_waits AS (
    SELECT conn_id, correlation_id, min(wait_start_at) AS first_wait_at, max(wait_ms) AS wait_ms,
        arg_max(blocker_root, wait_ms) AS blocker_root
    FROM request_waits
    GROUP BY conn_id, correlation_id
),
linked AS (
    SELECT
        r.tid,
        least(q.first_wait_at, r.first_write_at, greatest(r.ready_at, coalesce(r.prev_end_at, r.ready_at))) AS start_at,
        r.last_write_end_at AS end_at,
        r.pp_id,
        CASE
            WHEN NOT coalesce(r.slow, false) THEN NULL
            WHEN r.write_ms >= s.explain_fraction * r.latency_ms AND r.write_ms >= coalesce(q.wait_ms, 0)
                THEN CASE WHEN coalesce(wc.proven, false) THEN 'journal_commit' ELSE 'slow_write' END
            WHEN q.wait_ms >= s.explain_fraction * r.latency_ms THEN q.blocker_root
            ELSE 'none'
        END AS root_cause
    FROM taken r
    LEFT JOIN req_waits q USING (conn_id, correlation_id)
    LEFT JOIN write_commits wc ON wc.write_id = r.longest_write_id
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
