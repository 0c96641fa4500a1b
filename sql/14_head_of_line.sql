-- stage:   14_head_of_line
-- purpose: A broker reads one request per connection at a time (the channel is muted until the
--          response is sent), so a request that arrived while the previous request on its
--          connection was still in flight waited for that response. pred_* names that request;
--          hol_ms is the wait (clipped to the request's own window).
-- grain:   one row per produce partition that arrived behind an unanswered request (pp_id)
-- reads:   produce
-- creates: head_of_line
CREATE OR REPLACE TABLE head_of_line AS
WITH req AS (
    SELECT conn_id, correlation_id, min(arrival_at) AS arrival_at, max(end_at) AS end_at
    FROM produce
    GROUP BY conn_id, correlation_id
),
lagged AS (
    SELECT
        *,
        lag(correlation_id) OVER w AS pred_correlation_id,
        lag(arrival_at) OVER w AS pred_arrival_at,
        lag(end_at) OVER w AS pred_end_at
    FROM req
    WINDOW w AS (PARTITION BY conn_id ORDER BY arrival_at, correlation_id)
)
SELECT
    p.pp_id,
    p.conn_id,
    l.pred_correlation_id,
    l.pred_arrival_at,
    l.pred_end_at,
    (epoch_us(least(l.pred_end_at, coalesce(p.end_at, l.pred_end_at))) - epoch_us(p.arrival_at)) / 1000.0 AS hol_ms
FROM produce p
JOIN lagged l USING (conn_id, correlation_id)
WHERE l.pred_end_at > p.arrival_at;
