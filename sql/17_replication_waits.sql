-- stage:   17_replication_waits
-- purpose: acks=-1: the leader answers only when the followers have the batches, which it learns
--          from their next fetch. Proven when the request's last write ended long before the
--          response and a follower fetch (replica id >= 0; when the capture gave no replica id,
--          a client id …fetcher…) arrived after that write and at
--          most replication_ack_ms before the response ended; repl_ms runs from the write's end
--          to that fetch.
-- grain:   one row per slow acks=-1 produce request with a follower fetch after its writes
-- reads:   produce, request_writes, kafka_requests, settings
-- creates: replication_waits
CREATE OR REPLACE TABLE replication_waits AS
WITH s AS (SELECT *, to_microseconds(round(capture_offset_ms * 1000)::BIGINT) AS shift FROM settings),
fetches AS (
    SELECT k.conn_id, k.correlation_id, k.client_id, k.arrival_at + s.shift AS arrival_at
    FROM kafka_requests k CROSS JOIN s
    WHERE k.api_key = 1 AND coalesce(k.replica_id >= 0, k.client_id LIKE '%fetcher%')
),
req AS (
    SELECT p.conn_id, p.correlation_id, max(p.end_at) AS end_at, max(rw.write_end_at) AS write_end_at
    FROM produce p JOIN request_writes rw USING (pp_id)
    WHERE p.slow AND p.acks = -1 AND p.end_at IS NOT NULL
    GROUP BY p.conn_id, p.correlation_id
)
SELECT
    r.conn_id,
    r.correlation_id,
    r.write_end_at,
    max(f.arrival_at) AS ack_fetch_at,
    arg_max(f.client_id, f.arrival_at) AS follower_client_id,
    count(*) AS fetches,
    (epoch_us(max(f.arrival_at)) - epoch_us(r.write_end_at)) / 1000.0 AS repl_ms
FROM req r
JOIN fetches f ON f.arrival_at > r.write_end_at AND f.arrival_at <= r.end_at
CROSS JOIN s
GROUP BY r.conn_id, r.correlation_id, r.write_end_at, r.end_at, s.replication_ack_ms
HAVING max(f.arrival_at) >= r.end_at - to_microseconds(round(s.replication_ack_ms * 1000)::BIGINT);
