-- stage:   16_queue_waits
-- purpose: A request read off its connection (at arrival, or when the request ahead of it on the
--          connection was answered) waits in the request queue until a handler takes it. The wait
--          is proven when, at that moment, every request handler thread was busy: the pool size
--          comes from the thread dump (else JFR's threads, else --handler-threads). queue_ms runs
--          from that moment to the handler's first evidence for the request (its first wait or
--          write). root_cause is the deepest root among the requests that kept the handlers busy.
-- grain:   one row per slow produce request taken late by its handler (conn_id, correlation_id)
-- reads:   produce, request_writes, request_waits, head_of_line, handler_busy, jvm_threads,
--          jfr_threads, settings
-- creates: queue_waits
CREATE OR REPLACE TABLE queue_waits AS
WITH s AS (SELECT * FROM settings),
pool AS (
    SELECT
        coalesce(
            (SELECT max(n) FROM (SELECT count(DISTINCT tid) AS n FROM jvm_threads WHERE name LIKE '%request-handler%' GROUP BY artifact_id, dump_index)),
            (SELECT nullif(count(DISTINCT os_tid), 0) FROM jfr_threads WHERE name LIKE '%request-handler%'),
            (SELECT handler_threads FROM settings)
        ) AS pool_size,
        CASE
            WHEN (SELECT count(*) FROM jvm_threads WHERE name LIKE '%request-handler%') > 0 THEN 'threaddump'
            WHEN (SELECT count(*) FROM jfr_threads WHERE name LIKE '%request-handler%') > 0 THEN 'jfr'
            WHEN (SELECT handler_threads FROM settings) IS NOT NULL THEN 'settings'
        END AS pool_source
),
first_waits AS (
    SELECT conn_id, correlation_id, min(wait_start_at) AS first_wait_at
    FROM request_waits
    GROUP BY conn_id, correlation_id
),
late AS (
    SELECT
        p.conn_id,
        p.correlation_id,
        max(p.latency_ms) AS latency_ms,
        arg_min(rw.write_tid, rw.write_start_at) AS handler_tid,
        greatest(min(p.arrival_at), coalesce(max(h.pred_end_at), min(p.arrival_at))) AS ready_at,
        least(min(rw.write_start_at), min(fw.first_wait_at)) AS pickup_at
    FROM produce p
    JOIN request_writes rw USING (pp_id)
    LEFT JOIN head_of_line h USING (pp_id)
    LEFT JOIN first_waits fw ON fw.conn_id = p.conn_id AND fw.correlation_id = p.correlation_id
    WHERE p.slow
    GROUP BY p.conn_id, p.correlation_id
),
candidates AS (
    SELECT l.*, (epoch_us(l.pickup_at) - epoch_us(l.ready_at)) / 1000.0 AS queue_ms
    FROM late l CROSS JOIN s
    WHERE (epoch_us(l.pickup_at) - epoch_us(l.ready_at)) / 1000.0 >= s.explain_fraction * l.latency_ms
),
-- per candidate and handler thread: the busy interval that started last before the request was
-- ready (ASOF; strictly before, so the request's own interval never counts), kept if it still
-- ran then; request intervals and unclaimed waits separately
probes AS (
    SELECT c.conn_id, c.correlation_id, c.ready_at, h.tid
    FROM candidates c CROSS JOIN (SELECT DISTINCT tid FROM handler_busy) h
),
covering AS (
    SELECT p.conn_id, p.correlation_id, p.tid, b.pp_id, b.root_cause
    FROM probes p
    ASOF JOIN (SELECT * FROM handler_busy WHERE pp_id IS NOT NULL) b ON p.tid = b.tid AND p.ready_at > b.start_at
    WHERE b.end_at > p.ready_at
    UNION ALL
    SELECT p.conn_id, p.correlation_id, p.tid, NULL, NULL
    FROM probes p
    ASOF JOIN (SELECT * FROM handler_busy WHERE pp_id IS NULL) b ON p.tid = b.tid AND p.ready_at > b.start_at
    WHERE b.end_at > p.ready_at
),
busy AS (
    SELECT
        conn_id,
        correlation_id,
        count(DISTINCT tid) AS busy_handlers,
        CASE max(CASE root_cause WHEN 'journal_commit' THEN 2 WHEN 'slow_write' THEN 1 WHEN 'none' THEN 0 END)
            WHEN 2 THEN 'journal_commit' WHEN 1 THEN 'slow_write' ELSE 'none' END AS root_cause,
        arg_max(pp_id, CASE root_cause WHEN 'journal_commit' THEN 2 WHEN 'slow_write' THEN 1 ELSE 0 END) AS root_pp_id
    FROM covering
    GROUP BY conn_id, correlation_id
)
SELECT
    c.conn_id,
    c.correlation_id,
    c.handler_tid,
    c.ready_at,
    c.pickup_at,
    c.queue_ms,
    coalesce(b.busy_handlers, 0) AS busy_handlers,
    pool.pool_size,
    pool.pool_source,
    pool.pool_size IS NOT NULL AND coalesce(b.busy_handlers, 0) >= pool.pool_size AS all_busy,
    coalesce(b.root_cause, 'none') AS root_cause,
    b.root_pp_id
FROM candidates c
LEFT JOIN busy b USING (conn_id, correlation_id)
CROSS JOIN pool;
