-- stage:   19_attribution
-- purpose: The answer. For every produce partition: slow or not, the immediate cause (the
--          candidate explaining the most of the latency, at least explain_fraction of it; else
--          unexplained), the root cause (head_of_line inherits the root of the request ahead on
--          the connection, recursively), the evidence, a readable chain, and which evidence was
--          missing for a slow request.
-- grain:   one row per produce request x topic x partition (pp_id)
-- reads:   settings, produce, cause_candidates, head_of_line, request_writes, write_commits,
--          request_waits, queue_waits, replication_waits, writes, threads, clock_offsets,
--          segment_batches, kafka_requests
-- creates: attribution
CREATE OR REPLACE TABLE attribution AS
WITH RECURSIVE
s AS (SELECT * FROM settings),
best AS (
    SELECT c.*
    FROM cause_candidates c JOIN produce p USING (pp_id) CROSS JOIN s
    WHERE c.explained_ms >= s.explain_fraction * p.latency_ms
    QUALIFY row_number() OVER (PARTITION BY c.pp_id ORDER BY c.explained_ms DESC, c.preference) = 1
),
first_level AS (
    SELECT p.pp_id, p.conn_id, p.correlation_id, CASE WHEN p.slow THEN coalesce(b.cause, 'unexplained') END AS cause,
        b.explained_ms, b.root_cause, b.culprit_write_id, b.wait_id
    FROM produce p LEFT JOIN best b USING (pp_id)
),
roots(pp_id, root_cause, root_pp_id, depth) AS (
    SELECT pp_id, coalesce(root_cause, 'none'), pp_id, 0
    FROM first_level
    WHERE cause IS DISTINCT FROM 'head_of_line'
    UNION ALL
    SELECT f.pp_id, r.root_cause, r.root_pp_id, r.depth + 1
    FROM first_level f
    JOIN head_of_line h ON h.pp_id = f.pp_id
    JOIN produce pred ON pred.conn_id = h.conn_id AND pred.correlation_id = h.pred_correlation_id
    JOIN roots r ON r.pp_id = pred.pp_id
    WHERE f.cause = 'head_of_line' AND r.depth < 64
),
resolved AS (
    SELECT
        pp_id,
        arg_max(root_cause, CASE root_cause WHEN 'journal_commit' THEN 2 WHEN 'slow_write' THEN 1 ELSE 0 END) AS root_cause,
        arg_max(root_pp_id, CASE root_cause WHEN 'journal_commit' THEN 2 WHEN 'slow_write' THEN 1 ELSE 0 END) AS root_pp_id
    FROM roots
    GROUP BY pp_id
),
-- the write at the bottom of a first-level cause: the request's slowest write, or the blocker's
culprit1 AS (
    SELECT
        f.pp_id,
        cw.tid AS culprit_tid,
        cw.latency_ms AS culprit_write_ms,
        cw.start_at AS culprit_write_at,
        cw.topic AS culprit_topic,
        cw.partition AS culprit_partition,
        f.culprit_write_id,
        wc.commit_start_at,
        wc.commit_latency_ms
    FROM first_level f
    LEFT JOIN writes cw ON cw.write_id = f.culprit_write_id
    LEFT JOIN write_commits wc ON wc.write_id = cw.write_id AND wc.proven
),
-- queue waits point at a request that kept a handler busy
culprit2 AS (
    SELECT f.pp_id, coalesce(q.root_pp_id, f.pp_id) AS via_pp_id
    FROM first_level f
    LEFT JOIN queue_waits q ON q.conn_id = f.conn_id AND q.correlation_id = f.correlation_id AND f.cause = 'queue_wait'
),
culprit AS (
    SELECT r.pp_id, r.root_cause, r.root_pp_id, v.culprit_tid, v.culprit_write_ms, v.culprit_write_at,
        v.culprit_topic, v.culprit_partition, v.culprit_write_id, v.commit_start_at, v.commit_latency_ms
    FROM resolved r
    JOIN culprit2 c2 ON c2.pp_id = r.root_pp_id
    JOIN culprit1 v ON v.pp_id = c2.via_pp_id
),
coverage AS (
    SELECT
        max(CASE WHEN source = 'ebpf' AND rows > 0 THEN first_at END) AS ebpf_from,
        max(CASE WHEN source = 'ebpf' AND rows > 0 THEN last_at END) AS ebpf_to,
        -- a journal trace prints only slow calls: when present it is taken to cover the eBPF session
        least(max(CASE WHEN source = 'journal' AND rows > 0 THEN first_at END),
            max(CASE WHEN source = 'ebpf' AND rows > 0 AND (SELECT count(*) FROM journal) > 0 THEN first_at END)) AS journal_from,
        greatest(max(CASE WHEN source = 'journal' AND rows > 0 THEN last_at END),
            max(CASE WHEN source = 'ebpf' AND rows > 0 AND (SELECT count(*) FROM journal) > 0 THEN last_at END)) AS journal_to,
        max(CASE WHEN source = 'capture' THEN first_at END) AS capture_from,
        max(CASE WHEN source = 'jfr' AND rows > 0 THEN first_at END) AS jfr_from,
        max(CASE WHEN source = 'jfr' AND rows > 0 THEN last_at END) AS jfr_to
    FROM clock_offsets
),
seg_parts AS (SELECT DISTINCT topic, partition FROM segment_batches),
follower AS (SELECT count(*) AS n FROM kafka_requests WHERE api_key = 1 AND client_id LIKE '%fetcher%'),
-- for unexplained requests: another thread writing the same partition across the request
suspects AS (
    SELECT p.pp_id, w.tid, w.latency_ms,
        (epoch_us(least(w.end_at, p.end_at)) - epoch_us(greatest(w.start_at, p.arrival_at))) / 1000.0 AS overlap_ms
    FROM produce p
    JOIN first_level f USING (pp_id)
    JOIN writes w ON w.topic = p.topic AND w.partition = p.partition AND w.start_at < p.end_at AND w.end_at > p.arrival_at
    LEFT JOIN request_writes rw USING (pp_id)
    CROSS JOIN s
    WHERE f.cause = 'unexplained' AND w.latency_ms >= s.min_write_ms AND w.write_id IS DISTINCT FROM rw.write_id
    QUALIFY row_number() OVER (PARTITION BY p.pp_id ORDER BY overlap_ms DESC, w.write_id) = 1
),
assembled AS (
    SELECT
        p.*,
        f.cause,
        CASE WHEN p.slow THEN coalesce(c.root_cause, 'none') END AS root_cause,
        CASE WHEN p.slow THEN coalesce(f.explained_ms, 0) END AS explained_ms,
        rw.link_method,
        rw.write_id,
        rw.write_tid,
        rw.write_start_at,
        rw.write_latency_ms,
        rw.write_tid AS handler_tid,
        ht.name AS handler_thread,
        CASE WHEN f.cause IN ('monitor_wait', 'head_of_line', 'queue_wait') THEN c.culprit_tid END AS blocker_tid,
        CASE WHEN f.cause IN ('slow_write', 'monitor_wait', 'head_of_line', 'queue_wait') THEN c.commit_start_at END AS commit_start_at,
        CASE WHEN f.cause IN ('slow_write', 'monitor_wait', 'head_of_line', 'queue_wait') THEN c.commit_latency_ms END AS commit_latency_ms,
        c.culprit_tid,
        c.culprit_write_ms,
        c.culprit_write_at,
        c.culprit_topic,
        c.culprit_partition,
        c.culprit_write_id,
        rq.lock_topic,
        rq.lock_partition,
        CASE f.cause WHEN 'head_of_line' THEN c.root_pp_id WHEN 'queue_wait' THEN q.root_pp_id END AS root_pp_id,
        rq.wait_start_at,
        rq.wait_end_at,
        rq.wait_ms,
        rq.owner_hint_tid,
        h.pred_correlation_id,
        h.hol_ms,
        q.queue_ms,
        q.busy_handlers,
        q.pool_size,
        r.ack_fetch_at,
        r.repl_ms,
        sus.tid AS suspect_tid,
        sus.latency_ms AS suspect_write_ms,
        list_filter([
            CASE WHEN p.end_at IS NULL THEN 'response' END,
            CASE WHEN p.slow AND rw.pp_id IS NULL THEN 'fs_writes' END,
            CASE WHEN p.slow AND (rw.link_method IS NULL OR rw.link_method = 'time_overlap')
                AND NOT EXISTS (SELECT 1 FROM seg_parts sp WHERE sp.topic = p.topic AND sp.partition = p.partition) THEN 'segments' END,
            CASE WHEN f.cause = 'unexplained' AND NOT coalesce(cov.jfr_from <= p.arrival_at AND cov.jfr_to >= p.end_at, false) THEN 'monitor_waits' END,
            CASE WHEN f.cause = 'unexplained' AND NOT coalesce(cov.ebpf_from <= p.arrival_at AND cov.ebpf_to >= p.end_at, false) AND rw.pp_id IS NOT NULL THEN 'fs_writes_window' END,
            CASE WHEN p.slow AND c.root_cause = 'slow_write'
                AND NOT coalesce(cov.journal_from <= c.culprit_write_at AND cov.journal_to >= c.culprit_write_at, false) THEN 'journal_commits' END,
            CASE WHEN f.cause = 'monitor_wait' AND rq.blocker_tid IS NULL THEN 'blocker_write' END,
            CASE WHEN f.cause = 'unexplained' AND q0.conn_id IS NOT NULL AND q0.pool_size IS NULL THEN 'handler_pool' END,
            CASE WHEN f.cause = 'unexplained' AND p.acks = -1 AND fol.n = 0 THEN 'follower_fetches' END,
            -- a request ahead of it on the connection may have been sent before the capture started
            CASE WHEN f.cause = 'unexplained' AND epoch_us(p.arrival_at) - epoch_us(cov.capture_from) < p.latency_ms * 1000 THEN 'capture_start' END
        ], lambda x: x IS NOT NULL) AS missing
    FROM produce p
    JOIN first_level f USING (pp_id)
    LEFT JOIN culprit c USING (pp_id)
    LEFT JOIN request_writes rw USING (pp_id)
    LEFT JOIN threads ht ON ht.tid = rw.write_tid
    LEFT JOIN request_waits rq
        ON rq.conn_id = p.conn_id AND rq.correlation_id = p.correlation_id AND rq.wait_id = f.wait_id AND f.cause = 'monitor_wait'
    LEFT JOIN head_of_line h ON h.pp_id = p.pp_id AND f.cause = 'head_of_line'
    LEFT JOIN queue_waits q ON q.conn_id = p.conn_id AND q.correlation_id = p.correlation_id AND f.cause = 'queue_wait'
    LEFT JOIN queue_waits q0 ON q0.conn_id = p.conn_id AND q0.correlation_id = p.correlation_id
    LEFT JOIN replication_waits r ON r.conn_id = p.conn_id AND r.correlation_id = p.correlation_id AND f.cause = 'replication_wait'
    LEFT JOIN suspects sus ON sus.pp_id = p.pp_id
    CROSS JOIN coverage cov
    CROSS JOIN follower fol
)
SELECT
    a.pp_id,
    a.conn_id,
    a.correlation_id,
    a.client_addr,
    a.client_port,
    a.topic,
    a.partition,
    a.acks,
    a.arrival_at,
    a.end_at,
    a.latency_ms,
    a.slow,
    a.cause,
    a.root_cause,
    a.link_method,
    a.write_id,
    a.write_tid,
    a.write_start_at,
    a.write_latency_ms,
    a.handler_tid,
    a.handler_thread,
    a.blocker_tid,
    bt.name AS blocker_thread,
    a.commit_start_at,
    a.commit_latency_ms,
    a.wait_start_at,
    a.wait_ms,
    a.owner_hint_tid,
    a.pred_correlation_id,
    a.queue_ms,
    a.busy_handlers,
    a.pool_size,
    a.ack_fetch_at,
    a.root_pp_id,
    a.explained_ms,
    CASE WHEN a.slow THEN
        CASE a.cause
            WHEN 'slow_write' THEN CASE WHEN a.culprit_write_id = a.write_id
                THEN printf('own write took %.1f ms (TID %d, %s)', a.write_latency_ms, a.write_tid, coalesce(a.handler_thread, '?'))
                ELSE printf('the request''s write to %s-%d took %.1f ms (TID %d, %s)', a.culprit_topic, a.culprit_partition, a.culprit_write_ms, a.culprit_tid, coalesce(a.handler_thread, '?'))
            END
            WHEN 'monitor_wait' THEN printf('handler TID %d (%s) blocked %.1f ms on the log lock of %s-%d', a.handler_tid, coalesce(a.handler_thread, '?'), a.wait_ms, coalesce(a.lock_topic, a.topic), coalesce(a.lock_partition, a.partition))
                || CASE WHEN a.blocker_tid IS NOT NULL THEN printf(' while TID %d (%s) wrote it', a.blocker_tid, coalesce(bt.name, '?')) ELSE '' END
            WHEN 'head_of_line' THEN printf('waited %.1f ms behind request %d on the same connection', a.explained_ms, a.pred_correlation_id)
            WHEN 'queue_wait' THEN printf('queued %.1f ms while all %d request handler threads were busy', a.queue_ms, a.pool_size)
            WHEN 'replication_wait' THEN printf('local write done, then %.1f ms until the follower''s acknowledging fetch', a.explained_ms)
            ELSE printf('no evidence explains %.1f ms', a.latency_ms)
                || CASE WHEN a.suspect_tid IS NOT NULL THEN printf('; TID %d wrote %s-%d for %.1f ms across it (lock wait likely, not proven)', a.suspect_tid, a.topic, a.partition, a.suspect_write_ms) ELSE '' END
        END
        || CASE
            WHEN a.cause = 'slow_write' AND a.root_cause = 'journal_commit' THEN coalesce(
                printf(' under a %.1f ms journal commit', a.commit_latency_ms),
                ' while its thread waited in the journal (no commit window traced)')
            WHEN a.cause = 'slow_write' THEN CASE WHEN list_contains(a.missing, 'journal_commits') THEN '' ELSE ' (no journal commit under it)' END
            WHEN a.root_cause = 'journal_commit' THEN printf(' <- TID %d''s %.1f ms write', a.culprit_tid, a.culprit_write_ms)
                || coalesce(printf(' under a %.1f ms journal commit', a.commit_latency_ms),
                            ' while its thread waited in the journal (no commit window traced)')
            WHEN a.root_cause = 'slow_write' THEN printf(' <- TID %d''s %.1f ms write', a.culprit_tid, a.culprit_write_ms)
                || CASE WHEN list_contains(a.missing, 'journal_commits') THEN '' ELSE ' (no journal commit under it)' END
            ELSE ''
        END
        || CASE WHEN len(a.missing) > 0 THEN ' [missing: ' || array_to_string(a.missing, ', ') || ']' ELSE '' END
    END AS chain,
    a.missing
FROM (
    SELECT a.* REPLACE (
        CASE WHEN a.cause = 'head_of_line' AND len(r.missing) > 0
            THEN list_distinct(list_concat(a.missing, r.missing)) ELSE a.missing END AS missing)
    FROM assembled a
    LEFT JOIN assembled r ON r.pp_id = a.root_pp_id AND a.cause = 'head_of_line'
) a
LEFT JOIN threads bt ON bt.tid = a.blocker_tid;
